//! Objects from kubectl-style YAML or JSON: multi-document files and `kind: List`.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::error::FixtureError;

/// Every object in a YAML (or JSON) text, with lists flattened and empty documents skipped.
pub(crate) fn objects_from_yaml(text: &str, origin: &Path) -> Result<Vec<Value>, FixtureError> {
    let mut objects = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value = Value::deserialize(document).map_err(|e| FixtureError::Load {
            path: origin.to_path_buf(),
            message: e.to_string(),
        })?;
        flatten(value, &mut objects);
    }
    Ok(objects)
}

/// Adds `value` to `out`, or its items when it is a List (`kind: List`, `PodList`, ...).
pub(crate) fn flatten(value: Value, out: &mut Vec<Value>) {
    match value {
        Value::Null => {}
        Value::Array(items) => items.into_iter().for_each(|v| flatten(v, out)),
        Value::Object(ref map)
            if map
                .get("kind")
                .and_then(Value::as_str)
                .is_some_and(|k| k.ends_with("List"))
                && map.get("items").is_some_and(Value::is_array) =>
        {
            if let Some(Value::Array(items)) = value.get("items").cloned() {
                items.into_iter().for_each(|v| flatten(v, out));
            }
        }
        other => out.push(other),
    }
}

pub(crate) fn objects_from_file(path: &Path) -> Result<Vec<Value>, FixtureError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| FixtureError::io(format!("reading {}", path.display()), e))?;
    objects_from_yaml(&text, path)
}

/// The YAML and JSON files of a directory, recursively, in name order.
pub(crate) fn manifest_files(dir: &Path) -> Result<Vec<PathBuf>, FixtureError> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries = std::fs::read_dir(&current)
            .map_err(|e| FixtureError::io(format!("reading {}", current.display()), e))?;
        for entry in entries {
            let path = entry
                .map_err(|e| FixtureError::io(format!("reading {}", current.display()), e))?
                .path();
            if path.is_dir() {
                pending.push(path);
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
            {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_multi_document_yaml_and_lists() {
        let text = r#"
# leading comment
---
apiVersion: v1
kind: Pod
metadata: {name: a}
---
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: b}
- apiVersion: k8s.cni.cncf.io/v1
  kind: NetworkAttachmentDefinition
  metadata: {name: c}
  spec:
    config: '{"cniVersion": "1.0.0"}'
"#;
        let objects = objects_from_yaml(text, Path::new("inline")).unwrap();
        let names: Vec<&str> = objects
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["a", "b", "c"]);
        assert_eq!(objects[2]["spec"]["config"], "{\"cniVersion\": \"1.0.0\"}");
    }

    #[test]
    fn json_is_yaml_too() {
        let objects = objects_from_yaml(
            r#"{"kind": "PodList", "apiVersion": "v1", "items": [{"kind": "Pod", "metadata": {"name": "x"}}]}"#,
            Path::new("inline"),
        )
        .unwrap();
        assert_eq!(
            objects,
            vec![json!({"kind": "Pod", "metadata": {"name": "x"}})]
        );
    }

    #[test]
    fn reports_the_file_of_a_syntax_error() {
        let err = objects_from_yaml("a: [", Path::new("bad.yaml")).unwrap_err();
        assert!(err.to_string().starts_with("bad.yaml:"), "{err}");
    }
}
