//! JSON merge patch (RFC 7386) and JSON patch (RFC 6902) over `serde_json::Value`.

use serde_json::Value;

/// Why a JSON patch could not be applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PatchError {
    /// The patch document is not a list of operations (400).
    #[error("invalid JSON patch: {0}")]
    Malformed(String),
    /// An operation does not apply to this object (422).
    #[error("{0}")]
    Failed(String),
}

/// Applies a merge patch in place: objects merge key by key, `null` deletes, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    if let Value::Object(map) = target {
        for (key, value) in patch {
            if value.is_null() {
                map.remove(key);
            } else {
                merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// Applies a JSON patch atomically: on error `target` is unchanged.
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let ops = patch
        .as_array()
        .ok_or_else(|| PatchError::Malformed("expected an array of operations".into()))?;
    let mut doc = target.clone();
    for op in ops {
        apply_op(&mut doc, op)?;
    }
    *target = doc;
    Ok(())
}

fn str_field<'a>(op: &'a Value, field: &str) -> Result<&'a str, PatchError> {
    op.get(field).and_then(Value::as_str).ok_or_else(|| {
        PatchError::Malformed(format!("operation {op} lacks string field {field:?}"))
    })
}

fn value_field(op: &Value) -> Result<Value, PatchError> {
    op.get("value")
        .cloned()
        .ok_or_else(|| PatchError::Malformed(format!("operation {op} lacks \"value\"")))
}

fn apply_op(doc: &mut Value, op: &Value) -> Result<(), PatchError> {
    let path = parse_pointer(str_field(op, "path")?)?;
    match str_field(op, "op")? {
        "add" => add(doc, &path, value_field(op)?),
        "remove" => remove(doc, &path).map(drop),
        "replace" => {
            remove(doc, &path)?;
            add(doc, &path, value_field(op)?)
        }
        "move" => {
            let from = parse_pointer(str_field(op, "from")?)?;
            if path.len() > from.len() && path[..from.len()] == from[..] {
                return Err(PatchError::Failed("cannot move a value into itself".into()));
            }
            let value = remove(doc, &from)?;
            add(doc, &path, value)
        }
        "copy" => {
            let from = parse_pointer(str_field(op, "from")?)?;
            let value = get(doc, &from)?.clone();
            add(doc, &path, value)
        }
        "test" => {
            let expected = value_field(op)?;
            if *get(doc, &path)? == expected {
                Ok(())
            } else {
                Err(PatchError::Failed(format!(
                    "testing value /{} failed",
                    path.join("/")
                )))
            }
        }
        other => Err(PatchError::Malformed(format!(
            "unknown operation {other:?}"
        ))),
    }
}

fn parse_pointer(pointer: &str) -> Result<Vec<String>, PatchError> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let rest = pointer
        .strip_prefix('/')
        .ok_or_else(|| PatchError::Malformed(format!("path {pointer:?} must start with '/'")))?;
    Ok(rest
        .split('/')
        .map(|token| token.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn missing(path: &[String]) -> PatchError {
    PatchError::Failed(format!("path /{} does not exist", path.join("/")))
}

fn array_index(token: &str, len: usize, allow_end: bool) -> Option<usize> {
    if allow_end && token == "-" {
        return Some(len);
    }
    if token.len() > 1 && token.starts_with('0') {
        return None;
    }
    let index: usize = token.parse().ok()?;
    let limit = if allow_end {
        len
    } else {
        len.saturating_sub(1)
    };
    (index <= limit && (allow_end || len > 0)).then_some(index)
}

fn get<'a>(doc: &'a Value, path: &[String]) -> Result<&'a Value, PatchError> {
    let mut current = doc;
    for token in path {
        current = match current {
            Value::Object(map) => map.get(token),
            Value::Array(items) => {
                array_index(token, items.len(), false).and_then(|i| items.get(i))
            }
            _ => None,
        }
        .ok_or_else(|| missing(path))?;
    }
    Ok(current)
}

fn parent_mut<'a>(
    doc: &'a mut Value,
    path: &[String],
) -> Result<(&'a mut Value, String), PatchError> {
    let (last, parents) = path
        .split_last()
        .ok_or_else(|| PatchError::Failed("the root cannot be the target here".into()))?;
    let mut current = doc;
    for token in parents {
        current = match current {
            Value::Object(map) => map.get_mut(token),
            Value::Array(items) => {
                let len = items.len();
                array_index(token, len, false).and_then(move |i| items.get_mut(i))
            }
            _ => None,
        }
        .ok_or_else(|| missing(path))?;
    }
    Ok((current, last.clone()))
}

fn add(doc: &mut Value, path: &[String], value: Value) -> Result<(), PatchError> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, last) = parent_mut(doc, path)?;
    match parent {
        Value::Object(map) => {
            map.insert(last, value);
            Ok(())
        }
        Value::Array(items) => {
            let index = array_index(&last, items.len(), true).ok_or_else(|| missing(path))?;
            items.insert(index, value);
            Ok(())
        }
        _ => Err(missing(path)),
    }
}

fn remove(doc: &mut Value, path: &[String]) -> Result<Value, PatchError> {
    let (parent, last) = parent_mut(doc, path)?;
    match parent {
        Value::Object(map) => map.remove(&last).ok_or_else(|| missing(path)),
        Value::Array(items) => {
            let index = array_index(&last, items.len(), false).ok_or_else(|| missing(path))?;
            Ok(items.remove(index))
        }
        _ => Err(missing(path)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc7386_examples() {
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (
                json!({"a": "b", "b": "c"}),
                json!({"a": null}),
                json!({"b": "c"}),
            ),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a": "b"}), json!(["c"]), json!(["c"])),
            (json!({"a": "foo"}), json!(null), json!(null)),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
            (
                json!([1, 2]),
                json!({"a": "b", "c": null}),
                json!({"a": "b"}),
            ),
            (
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
        ];
        for (mut target, patch, expected) in cases {
            merge_patch(&mut target, &patch);
            assert_eq!(target, expected, "patch {patch}");
        }
    }

    #[test]
    fn json_patch_applies_every_operation() {
        let mut doc = json!({"metadata": {"labels": {"a": "1"}}, "list": [1, 2, 3]});
        let patch = json!([
            {"op": "test", "path": "/metadata/labels/a", "value": "1"},
            {"op": "add", "path": "/metadata/labels/b~1c", "value": "2"},
            {"op": "replace", "path": "/metadata/labels/a", "value": "9"},
            {"op": "add", "path": "/list/-", "value": 4},
            {"op": "add", "path": "/list/0", "value": 0},
            {"op": "remove", "path": "/list/1"},
            {"op": "copy", "from": "/list", "path": "/copy"},
            {"op": "move", "from": "/copy", "path": "/moved"},
        ]);
        json_patch(&mut doc, &patch).unwrap();
        assert_eq!(
            doc,
            json!({
                "metadata": {"labels": {"a": "9", "b/c": "2"}},
                "list": [0, 2, 3, 4],
                "moved": [0, 2, 3, 4],
            })
        );
    }

    #[test]
    fn failed_json_patch_leaves_the_document_unchanged() {
        let mut doc = json!({"a": 1});
        let patch = json!([
            {"op": "add", "path": "/b", "value": 2},
            {"op": "test", "path": "/a", "value": 2},
        ]);
        assert!(matches!(
            json_patch(&mut doc, &patch),
            Err(PatchError::Failed(_))
        ));
        assert_eq!(doc, json!({"a": 1}));
        assert!(matches!(
            json_patch(&mut doc, &json!([{"op": "remove", "path": "/nope"}])),
            Err(PatchError::Failed(_))
        ));
        assert!(matches!(
            json_patch(
                &mut doc,
                &json!([{"op": "replace", "path": "/x/y", "value": 1}])
            ),
            Err(PatchError::Failed(_))
        ));
        assert!(matches!(
            json_patch(&mut doc, &json!({"op": "add"})),
            Err(PatchError::Malformed(_))
        ));
        assert!(matches!(
            json_patch(&mut doc, &json!([{"op": "frobnicate", "path": "/a"}])),
            Err(PatchError::Malformed(_))
        ));
        assert!(matches!(
            json_patch(&mut doc, &json!([{"op": "add", "path": "a", "value": 1}])),
            Err(PatchError::Malformed(_))
        ));
    }

    #[test]
    fn array_indices_are_bounded() {
        let mut doc = json!({"l": [1]});
        assert!(
            json_patch(
                &mut doc,
                &json!([{"op": "add", "path": "/l/1", "value": 2}])
            )
            .is_ok()
        );
        assert!(
            json_patch(
                &mut doc,
                &json!([{"op": "add", "path": "/l/5", "value": 2}])
            )
            .is_err()
        );
        assert!(json_patch(&mut doc, &json!([{"op": "remove", "path": "/l/2"}])).is_err());
        assert!(json_patch(&mut doc, &json!([{"op": "remove", "path": "/l/01"}])).is_err());
        assert_eq!(doc, json!({"l": [1, 2]}));
    }
}
