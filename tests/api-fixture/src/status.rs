//! Failures as kube-apiserver reports them: a `Status` object with a reason and an HTTP code.

use serde_json::{Map, Value, json};

/// One failed API call, rendered as a `meta/v1 Status` body.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    /// HTTP status code, also the Status `code` field.
    pub code: u16,
    /// Status `reason` (NotFound, Conflict, ...).
    pub reason: String,
    /// Human-readable Status `message`.
    pub message: String,
    /// Status `details`: name, group, kind (the plural resource), causes, retryAfterSeconds.
    pub details: Option<Box<Value>>,
    /// Seconds for the Retry-After header (429 and 503).
    pub retry_after: Option<u32>,
}

/// The reason kube-apiserver gives for a bare HTTP code.
pub fn reason_for_code(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "Conflict",
        410 => "Gone",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    }
}

/// Which object an error is about, for Status details.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Subject<'a> {
    pub group: &'a str,
    pub plural: &'a str,
    pub name: &'a str,
}

impl Subject<'_> {
    /// `pods "web"` or `network-attachment-definitions.k8s.cni.cncf.io "net1"`.
    fn qualified(&self) -> String {
        if self.group.is_empty() {
            format!("{} \"{}\"", self.plural, self.name)
        } else {
            format!("{}.{} \"{}\"", self.plural, self.group, self.name)
        }
    }

    fn details(&self) -> Value {
        let mut details = Map::new();
        details.insert("name".into(), json!(self.name));
        if !self.group.is_empty() {
            details.insert("group".into(), json!(self.group));
        }
        details.insert("kind".into(), json!(self.plural));
        Value::Object(details)
    }
}

impl ApiError {
    /// An error with the reason kube-apiserver uses for `code`.
    pub fn new(code: u16, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason: reason_for_code(code).to_string(),
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    pub(crate) fn not_found(subject: Subject<'_>) -> Self {
        ApiError {
            details: Some(Box::new(subject.details())),
            ..Self::new(404, format!("{} not found", subject.qualified()))
        }
    }

    pub(crate) fn already_exists(subject: Subject<'_>) -> Self {
        ApiError {
            reason: "AlreadyExists".into(),
            details: Some(Box::new(subject.details())),
            ..Self::new(409, format!("{} already exists", subject.qualified()))
        }
    }

    pub(crate) fn conflict(subject: Subject<'_>, why: &str) -> Self {
        ApiError {
            details: Some(Box::new(subject.details())),
            ..Self::new(
                409,
                format!(
                    "Operation cannot be fulfilled on {}: {why}",
                    subject.qualified()
                ),
            )
        }
    }

    pub(crate) fn stale_resource_version(subject: Subject<'_>) -> Self {
        Self::conflict(
            subject,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 with one cause per invalid field, as validation failures carry.
    pub(crate) fn invalid(kind: &str, name: &str, group: &str, causes: &[(&str, String)]) -> Self {
        let text: Vec<String> = causes
            .iter()
            .map(|(field, msg)| format!("{field}: {msg}"))
            .collect();
        let causes: Vec<Value> = causes
            .iter()
            .map(|(field, msg)| json!({"reason": "FieldValueInvalid", "message": msg, "field": field}))
            .collect();
        let mut details = Map::new();
        details.insert("name".into(), json!(name));
        if !group.is_empty() {
            details.insert("group".into(), json!(group));
        }
        details.insert("kind".into(), json!(kind));
        details.insert("causes".into(), Value::Array(causes));
        ApiError {
            details: Some(Box::new(Value::Object(details))),
            ..Self::new(
                422,
                format!("{kind} \"{name}\" is invalid: {}", text.join(", ")),
            )
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }

    /// Watch from a resourceVersion older than the kept history.
    pub(crate) fn expired(requested: u64, oldest: u64) -> Self {
        ApiError {
            reason: "Expired".into(),
            ..Self::new(
                410,
                format!("too old resource version: {requested} ({oldest})"),
            )
        }
    }

    /// The `Status` object sent as the response body or in a watch ERROR event.
    pub fn to_status(&self) -> Value {
        let mut status = Map::new();
        status.insert("kind".into(), json!("Status"));
        status.insert("apiVersion".into(), json!("v1"));
        status.insert("metadata".into(), json!({}));
        status.insert("status".into(), json!("Failure"));
        status.insert("message".into(), json!(self.message));
        status.insert("reason".into(), json!(self.reason));
        let mut details = self.details.as_deref().cloned();
        if let Some(secs) = self.retry_after {
            let entry = details.get_or_insert_with(|| json!({}));
            if let Some(map) = entry.as_object_mut() {
                map.insert("retryAfterSeconds".into(), json!(secs));
            }
        }
        if let Some(details) = details {
            status.insert("details".into(), details);
        }
        status.insert("code".into(), json!(self.code));
        Value::Object(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POD: Subject<'static> = Subject {
        group: "",
        plural: "pods",
        name: "web",
    };

    #[test]
    fn not_found_matches_apiserver_wording() {
        let status = ApiError::not_found(POD).to_status();
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["status"], "Failure");
        assert_eq!(status["reason"], "NotFound");
        assert_eq!(status["code"], 404);
        assert_eq!(status["message"], "pods \"web\" not found");
        assert_eq!(status["details"], json!({"name": "web", "kind": "pods"}));
    }

    #[test]
    fn group_resources_are_qualified() {
        let nad = Subject {
            group: "k8s.cni.cncf.io",
            plural: "network-attachment-definitions",
            name: "net1",
        };
        let status = ApiError::already_exists(nad).to_status();
        assert_eq!(
            status["message"],
            "network-attachment-definitions.k8s.cni.cncf.io \"net1\" already exists"
        );
        assert_eq!(status["reason"], "AlreadyExists");
        assert_eq!(status["details"]["group"], "k8s.cni.cncf.io");
    }

    #[test]
    fn retry_after_lands_in_details() {
        let mut err = ApiError::new(429, "slow down");
        err.retry_after = Some(3);
        let status = err.to_status();
        assert_eq!(status["reason"], "TooManyRequests");
        assert_eq!(status["details"]["retryAfterSeconds"], 3);
    }

    #[test]
    fn invalid_lists_causes() {
        let err = ApiError::invalid(
            "Pod",
            "x",
            "",
            &[("metadata.name", "Required value".into())],
        );
        assert_eq!(err.code, 422);
        assert_eq!(err.reason, "Invalid");
        assert_eq!(
            err.to_status()["details"]["causes"][0]["field"],
            "metadata.name"
        );
    }
}
