//! AdmissionReview in, AdmissionReview out: the plumbing every endpoint shares.

use base64::prelude::{BASE64_STANDARD, Engine as _};
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use kube::core::{DynamicObject, Status};
use serde_json::Value;

/// An admission request for any kind of object.
pub type Request = AdmissionRequest<DynamicObject>;

/// Why a request is denied: the HTTP-style code and reason the API server shows, and the message
/// the user reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// 400 for a bad object, 403 for a policy refusal, 500 when the webhook could not decide.
    pub code: u16,
    /// `BadRequest`, `Forbidden` or `InternalError`.
    pub reason: &'static str,
    /// What is wrong, naming the field at fault.
    pub message: String,
}

impl Denial {
    /// The object is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            code: 400,
            reason: "BadRequest",
            message: message.into(),
        }
    }

    /// The object is well formed but a policy refuses it.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self {
            code: 403,
            reason: "Forbidden",
            message: message.into(),
        }
    }

    /// The webhook could not reach a decision (the API failed).
    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            code: 500,
            reason: "InternalError",
            message: message.into(),
        }
    }

    /// The response denying `request` for this reason.
    pub fn respond(self, request: &Request) -> AdmissionResponse {
        let mut response = AdmissionResponse::from(request).deny(&self.message);
        response.result = Status::failure(&self.message, self.reason).with_code(self.code);
        response
    }
}

/// Parses an AdmissionReview body. When that fails, the answer is an invalid-request response that
/// still carries the request's uid when one can be read, so the API server can match it.
pub fn parse_review(body: &[u8]) -> Result<Request, Box<AdmissionResponse>> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        Box::new(AdmissionResponse::invalid(format!(
            "the body is not an AdmissionReview (JSON): {e}"
        )))
    })?;
    let uid = value
        .pointer("/request/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let invalid = |message: String| {
        let mut response = AdmissionResponse::invalid(message);
        response.uid = uid.clone();
        Box::new(response)
    };
    let review: AdmissionReview<DynamicObject> = serde_json::from_value(value)
        .map_err(|e| invalid(format!("the body is not an AdmissionReview: {e}")))?;
    review
        .try_into()
        .map_err(|_| invalid("the AdmissionReview has no request".to_owned()))
}

/// The AdmissionReview JSON that carries `response`.
pub fn review_body(response: AdmissionResponse) -> Vec<u8> {
    let patch = response.patch.clone();
    // An AdmissionReview of strings, maps and bytes always serializes.
    let mut review = serde_json::to_value(response.into_review()).unwrap_or_default();
    // The API server reads `patch` as Go's []byte, a base64 string; kube writes a number array.
    if let (Some(patch), Some(slot)) = (patch, review.pointer_mut("/response/patch")) {
        *slot = Value::String(BASE64_STANDARD.encode(patch));
    }
    serde_json::to_vec(&review).unwrap_or_default()
}

/// One endpoint's whole job: the request body in, the response body out, with `decide` choosing.
pub fn answer(body: &[u8], decide: impl FnOnce(&Request) -> AdmissionResponse) -> Vec<u8> {
    let response = match parse_review(body) {
        Ok(request) => decide(&request),
        Err(invalid) => *invalid,
    };
    review_body(response)
}

/// The object under review as JSON (`null` when the request has none, as on DELETE).
pub fn object_json(request: &Request) -> Value {
    request
        .object
        .as_ref()
        .and_then(|o| serde_json::to_value(o).ok())
        .unwrap_or(Value::Null)
}

/// The namespace the object lives in: its own, else the request's (objects created through a
/// controller often carry none), else `default`.
pub fn object_namespace(request: &Request) -> String {
    request
        .object
        .as_ref()
        .and_then(|o| o.metadata.namespace.clone())
        .filter(|ns| !ns.is_empty())
        .or_else(|| request.namespace.clone().filter(|ns| !ns.is_empty()))
        .unwrap_or_else(|| "default".to_owned())
}

/// The object's kind as `group/version kind` for messages.
pub fn kind_label(request: &Request) -> String {
    let kind = &request.kind;
    if kind.group.is_empty() {
        format!("{} {}", kind.version, kind.kind)
    } else {
        format!("{}/{} {}", kind.group, kind.version, kind.kind)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// An AdmissionReview v1 for `object` as the API server sends it.
    pub(crate) fn review_json(
        group: &str,
        kind: &str,
        resource: &str,
        operation: &str,
        namespace: &str,
        object: Value,
    ) -> Vec<u8> {
        let name = object
            .pointer("/metadata/name")
            .cloned()
            .unwrap_or(json!(""));
        let version = "v1";
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
                "kind": {"group": group, "version": version, "kind": kind},
                "resource": {"group": group, "version": version, "resource": resource},
                "name": name,
                "namespace": namespace,
                "operation": operation,
                "userInfo": {"username": "admin"},
                "object": object,
                "oldObject": null,
                "dryRun": false
            }
        }))
        .unwrap()
    }

    pub(crate) fn response_of(body: &[u8]) -> Value {
        let review: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(review["kind"], "AdmissionReview");
        review["response"].clone()
    }

    #[test]
    fn garbage_is_an_invalid_request_without_uid() {
        let response = response_of(&answer(b"not json", |_| unreachable!()));
        assert_eq!(response["allowed"], false);
        assert_eq!(response["uid"], "");
        assert_eq!(response["status"]["reason"], "InvalidRequest");
    }

    #[test]
    fn an_unreadable_request_keeps_its_uid() {
        let body = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview",
            "request":{"uid":"abc","kind":"not-a-gvk"}}"#;
        let response = response_of(&answer(body, |_| unreachable!()));
        assert_eq!(response["allowed"], false);
        assert_eq!(response["uid"], "abc");
        let body = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#;
        let response = response_of(&answer(body, |_| unreachable!()));
        assert_eq!(
            response["status"]["message"],
            "the AdmissionReview has no request"
        );
    }

    #[test]
    fn a_denial_carries_code_reason_and_message() {
        let body = review_json(
            "",
            "Pod",
            "pods",
            "CREATE",
            "team",
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}),
        );
        let response = response_of(&answer(&body, |request| {
            assert_eq!(object_namespace(request), "team");
            assert_eq!(kind_label(request), "v1 Pod");
            Denial::forbidden("no").respond(request)
        }));
        assert_eq!(response["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
        assert_eq!(response["allowed"], false);
        assert_eq!(response["status"]["code"], 403);
        assert_eq!(response["status"]["reason"], "Forbidden");
        assert_eq!(response["status"]["message"], "no");
    }
}
