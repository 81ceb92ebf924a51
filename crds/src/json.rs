//! JSON helpers the annotation and device-info readers share.

use serde_json::Value;

/// Go leaves a field at its zero value on `null`; removing null members gives serde the same
/// reading through `#[serde(default)]`.
pub(crate) fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(object) => {
            object.retain(|_, v| !v.is_null());
            object.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}
