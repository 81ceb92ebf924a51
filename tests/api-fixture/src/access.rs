//! `SelfSubjectAccessReview`: the caller asks whether it may do something, as `kubectl auth
//! can-i` does. Every request is allowed unless a test denied it.

use serde_json::{Value, json};

use crate::status::ApiError;

/// Where kube-apiserver serves it.
pub(crate) const PATH: &str = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";

/// A denied permission: a verb on a resource (`pods`, `pods/status`,
/// `network-attachment-definitions`), in any namespace and API group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Denied {
    rules: Vec<(String, String)>,
}

impl Denied {
    pub(crate) fn deny(&mut self, verb: &str, resource: &str) {
        self.rules.push((verb.to_string(), resource.to_string()));
    }

    fn denies(&self, verb: &str, resource: &str) -> bool {
        self.rules.iter().any(|(v, r)| v == verb && r == resource)
    }

    /// The review of `body` with its `status` filled in, as kube-apiserver answers it.
    pub(crate) fn review(&self, body: &[u8]) -> Result<Value, ApiError> {
        let mut review: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("SelfSubjectAccessReview: {e}")))?;
        let attrs = &review["spec"]["resourceAttributes"];
        let text = |key: &str| attrs[key].as_str().unwrap_or("").to_string();
        let (verb, resource, sub) = (text("verb"), text("resource"), text("subresource"));
        if verb.is_empty() || resource.is_empty() {
            return Err(ApiError::bad_request(
                "SelfSubjectAccessReview: spec.resourceAttributes needs verb and resource",
            ));
        }
        let full = if sub.is_empty() {
            resource
        } else {
            format!("{resource}/{sub}")
        };
        let allowed = !self.denies(&verb, &full);
        review["status"] = if allowed {
            json!({"allowed": true, "reason": "the fixture allows it"})
        } else {
            json!({"allowed": false, "reason": format!("the fixture denies {verb} {full}")})
        };
        Ok(review)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denied_permissions_are_answered_not_allowed() {
        let mut denied = Denied::default();
        denied.deny("patch", "pods/status");
        let ask = |verb: &str, sub: &str| {
            let body = json!({"apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": {"verb": verb, "resource": "pods", "subresource": sub}}});
            denied.review(body.to_string().as_bytes()).unwrap()["status"]["allowed"].clone()
        };
        assert_eq!(ask("patch", "status"), json!(false));
        assert_eq!(ask("patch", ""), json!(true));
        assert_eq!(ask("get", "status"), json!(true));
        assert!(denied.review(b"{}").is_err());
    }
}
