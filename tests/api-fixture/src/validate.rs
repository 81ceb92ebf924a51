//! The few validation rules of kube-apiserver that clients commonly run into.

use serde_json::Value;

/// RFC 1123 subdomain, the rule for most object names (pods, NADs, events).
pub(crate) fn dns_subdomain_error(name: &str) -> Option<String> {
    let label_ok = |label: &str| {
        !label.is_empty()
            && label
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if name.len() > 253 {
        return Some(format!(
            "Invalid value: {name:?}: must be no more than 253 characters"
        ));
    }
    if name.split('.').all(label_ok) {
        None
    } else {
        Some(format!(
            "Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case \
             alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
        ))
    }
}

/// kube-apiserver lets a pod update change only container images, tolerations,
/// activeDeadlineSeconds and terminationGracePeriodSeconds. Returns an error message
/// when `new` changes anything else in `old`'s spec.
pub(crate) fn pod_spec_update_error(old: &Value, new: &Value) -> Option<String> {
    let (Some(old_spec), Some(new_spec)) = (old.get("spec"), new.get("spec")) else {
        return (old.get("spec") != new.get("spec"))
            .then(|| "spec: Forbidden: pod updates may not add or remove the spec".to_string());
    };
    let mut normalized = new_spec.clone();
    if let Some(map) = normalized.as_object_mut() {
        for field in [
            "tolerations",
            "activeDeadlineSeconds",
            "terminationGracePeriodSeconds",
        ] {
            match old_spec.get(field) {
                Some(v) => map.insert(field.to_string(), v.clone()),
                None => map.remove(field),
            };
        }
        for list in ["containers", "initContainers"] {
            let old_list = old_spec.get(list).and_then(Value::as_array);
            if let (Some(old_list), Some(Value::Array(new_list))) = (old_list, map.get_mut(list)) {
                for (new_c, old_c) in new_list.iter_mut().zip(old_list) {
                    if let (Some(c), Some(image)) = (new_c.as_object_mut(), old_c.get("image")) {
                        c.insert("image".into(), image.clone());
                    }
                }
            }
        }
    }
    (normalized != *old_spec).then(|| {
        "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`, \
         `spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` \
         (only additions to existing tolerations) or `spec.terminationGracePeriodSeconds`"
            .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_follow_rfc1123() {
        assert_eq!(dns_subdomain_error("web-1.example"), None);
        assert!(dns_subdomain_error("Web").is_some());
        assert!(dns_subdomain_error("-web").is_some());
        assert!(dns_subdomain_error("web..x").is_some());
        assert!(dns_subdomain_error(&"a".repeat(254)).is_some());
    }

    #[test]
    fn pods_may_change_images_but_not_node() {
        let old = json!({"spec": {"nodeName": "a", "containers": [{"name": "c", "image": "x:1"}]}});
        let image =
            json!({"spec": {"nodeName": "a", "containers": [{"name": "c", "image": "x:2"}]}});
        let node =
            json!({"spec": {"nodeName": "b", "containers": [{"name": "c", "image": "x:1"}]}});
        let tolerations = json!({"spec": {"nodeName": "a", "tolerations": [{"key": "k"}],
            "containers": [{"name": "c", "image": "x:1"}]}});
        assert_eq!(pod_spec_update_error(&old, &image), None);
        assert_eq!(pod_spec_update_error(&old, &tolerations), None);
        assert!(pod_spec_update_error(&old, &node).is_some());
    }
}
