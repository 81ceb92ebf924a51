//! The object store: objects as JSON, one global resourceVersion counter, a bounded
//! history of changes for watches, and kube-apiserver's rules for each write.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use crate::ids;
use crate::patch::{self, PatchError};
use crate::resource::{ResourceDef, StatusSubresource};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::{ApiError, Subject};
use crate::validate;

/// Index of a resource type in the store's table.
pub(crate) type ResourceId = usize;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct ObjectKey {
    resource: ResourceId,
    namespace: String,
    name: String,
}

/// The type of a watch event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One committed change.
#[derive(Debug)]
pub(crate) struct StoreEvent {
    pub resource: ResourceId,
    pub resource_version: u64,
    pub event_type: EventType,
    /// The object before a modification, to tell when it leaves or enters a selector.
    pub previous: Option<Value>,
    /// The object after the change (the last state for deletions).
    pub object: Value,
}

/// Which objects a list or watch selects.
#[derive(Clone, Debug, Default)]
pub(crate) struct ObjectFilter {
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl ObjectFilter {
    pub fn matches(&self, object: &Value) -> bool {
        let meta = &object["metadata"];
        if let Some(ns) = &self.namespace
            && meta["namespace"].as_str() != Some(ns.as_str())
        {
            return false;
        }
        self.labels.matches(meta["labels"].as_object()) && self.fields.matches(object)
    }

    /// How a change looks to a watcher using this filter: an object that stops matching
    /// is DELETED for it, one that starts matching is ADDED.
    pub fn view(&self, event: &StoreEvent) -> Option<EventType> {
        let now = self.matches(&event.object);
        let before = event.previous.as_ref().is_some_and(|p| self.matches(p));
        match (event.event_type, before, now) {
            (EventType::Modified, true, true) => Some(EventType::Modified),
            (EventType::Modified, true, false) => Some(EventType::Deleted),
            (EventType::Modified, false, true) => Some(EventType::Added),
            (EventType::Modified, false, false) => None,
            (other, _, true) => Some(other),
            (_, _, false) => None,
        }
    }
}

/// Which part of an object a write addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    Main,
    Status,
}

/// Patch formats, by request Content-Type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PatchType {
    Merge,
    Json,
    /// Treated as a merge patch: lists replace rather than merge by key.
    StrategicMerge,
    /// Server-side apply, treated as a merge patch that may create the object.
    Apply,
}

impl PatchType {
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let mime = content_type.split(';').next().unwrap_or("").trim();
        match mime {
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/json-patch+json" => Some(PatchType::Json),
            "application/strategic-merge-patch+json" => Some(PatchType::StrategicMerge),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
                Some(PatchType::Apply)
            }
            _ => None,
        }
    }
}

/// What a new watch starts with.
pub(crate) struct Subscription {
    /// Events to send before live ones: a snapshot as ADDED, or history replayed.
    pub initial: Vec<(EventType, Value)>,
    pub receiver: broadcast::Receiver<Arc<StoreEvent>>,
    /// The store's version when the watch began.
    pub resource_version: u64,
}

/// Where a watch starts.
pub(crate) enum WatchFrom {
    /// Every current object as ADDED, then changes.
    Snapshot,
    /// Changes after this resourceVersion.
    After(u64),
}

pub(crate) struct Store {
    defs: Vec<ResourceDef>,
    objects: BTreeMap<ObjectKey, Value>,
    resource_version: u64,
    history: VecDeque<Arc<StoreEvent>>,
    history_limit: usize,
    /// Every change after this version is still in `history`.
    oldest_watchable: u64,
    events: broadcast::Sender<Arc<StoreEvent>>,
}

fn meta(object: &Value) -> &Value {
    &object["metadata"]
}

fn meta_str<'a>(object: &'a Value, field: &str) -> &'a str {
    meta(object)[field].as_str().unwrap_or("")
}

fn meta_mut(object: &mut Value) -> &mut Map<String, Value> {
    if !object.is_object() {
        *object = json!({});
    }
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    match object.get_mut("metadata") {
        Some(Value::Object(map)) => map,
        _ => unreachable!("metadata was made an object just above"),
    }
}

/// A string field of a metadata map, "" when absent.
fn map_str<'a>(meta: &'a Map<String, Value>, field: &str) -> &'a str {
    meta.get(field).and_then(Value::as_str).unwrap_or("")
}

/// Finalizers still hold the object.
fn has_finalizers(object: &Value) -> bool {
    meta(object)["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty())
}

fn is_deleting(object: &Value) -> bool {
    meta(object).get("deletionTimestamp").is_some()
}

fn namespace_mismatch() -> ApiError {
    ApiError::bad_request(
        "the namespace of the provided object does not match the namespace sent on the request",
    )
}

fn set_or_remove(map: &mut Map<String, Value>, key: &str, value: Option<&Value>) {
    match value {
        Some(v) => {
            map.insert(key.to_string(), v.clone());
        }
        None => {
            map.remove(key);
        }
    }
}

fn copy_field(from: &Value, to: &mut Value, field: &str) {
    if let Some(map) = to.as_object_mut() {
        set_or_remove(map, field, from.get(field));
    }
}

fn parse_resource_version(value: &str) -> Result<u64, ApiError> {
    value
        .parse()
        .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {value:?}")))
}

impl Store {
    pub fn new(defs: Vec<ResourceDef>, history_limit: usize) -> Self {
        let (events, _) = broadcast::channel(4096);
        Store {
            defs,
            objects: BTreeMap::new(),
            resource_version: 0,
            history: VecDeque::new(),
            history_limit,
            oldest_watchable: 0,
            events,
        }
    }

    /// A copy for a dry run: same objects and versions, no watchers, no history.
    pub fn dry_run_copy(&self) -> Store {
        let (events, _) = broadcast::channel(1);
        Store {
            defs: self.defs.clone(),
            objects: self.objects.clone(),
            resource_version: self.resource_version,
            history: VecDeque::new(),
            history_limit: 1,
            oldest_watchable: self.oldest_watchable,
            events,
        }
    }

    pub fn defs(&self) -> &[ResourceDef] {
        &self.defs
    }

    pub fn def(&self, id: ResourceId) -> &ResourceDef {
        &self.defs[id]
    }

    pub fn resource_version(&self) -> u64 {
        self.resource_version
    }

    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<ResourceId> {
        self.defs
            .iter()
            .position(|d| d.group == group && d.version == version && d.plural == plural)
    }

    /// A resource by Kind, plural, singular or short name, optionally `.group`-qualified.
    pub fn resolve_name(&self, name: &str) -> Option<ResourceId> {
        self.defs.iter().position(|d| d.is_named(name))
    }

    /// The resource an object belongs to, from its apiVersion and kind.
    pub fn resolve_object(&self, object: &Value) -> Option<ResourceId> {
        let api_version = object["apiVersion"].as_str()?;
        let kind = object["kind"].as_str()?;
        self.defs
            .iter()
            .position(|d| d.api_version() == api_version && d.kind == kind)
    }

    fn subject<'a>(&'a self, id: ResourceId, name: &'a str) -> Subject<'a> {
        let def = &self.defs[id];
        Subject {
            group: &def.group,
            plural: &def.plural,
            name,
        }
    }

    fn key(&self, id: ResourceId, namespace: Option<&str>, name: &str) -> ObjectKey {
        let namespace = if self.defs[id].namespaced {
            namespace.unwrap_or("")
        } else {
            ""
        };
        ObjectKey {
            resource: id,
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }

    pub fn get(&self, id: ResourceId, namespace: Option<&str>, name: &str) -> Option<Value> {
        self.objects.get(&self.key(id, namespace, name)).cloned()
    }

    pub fn get_or_404(
        &self,
        id: ResourceId,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        self.get(id, namespace, name)
            .ok_or_else(|| ApiError::not_found(self.subject(id, name)))
    }

    /// Matching objects ordered by namespace and name, and the version they were read at.
    pub fn list(&self, id: ResourceId, filter: &ObjectFilter) -> (Vec<Value>, u64) {
        let items = self
            .objects
            .iter()
            .filter(|(key, object)| key.resource == id && filter.matches(object))
            .map(|(_, object)| object.clone())
            .collect();
        (items, self.resource_version)
    }

    fn emit(
        &mut self,
        id: ResourceId,
        event_type: EventType,
        previous: Option<Value>,
        object: &Value,
    ) {
        let event = Arc::new(StoreEvent {
            resource: id,
            resource_version: self.resource_version,
            event_type,
            previous,
            object: object.clone(),
        });
        self.history.push_back(event.clone());
        while self.history.len() > self.history_limit {
            if let Some(dropped) = self.history.pop_front() {
                self.oldest_watchable = dropped.resource_version;
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = self.events.send(event);
    }

    fn next_version(&mut self) -> u64 {
        self.resource_version += 1;
        self.resource_version
    }

    /// Stores `object` under a fresh resourceVersion and tells watchers.
    fn commit(
        &mut self,
        id: ResourceId,
        key: ObjectKey,
        mut object: Value,
        previous: Option<Value>,
    ) -> Value {
        let version = self.next_version();
        meta_mut(&mut object).insert("resourceVersion".into(), json!(version.to_string()));
        let event_type = if previous.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.objects.insert(key, object.clone());
        self.emit(id, event_type, previous, &object);
        object
    }

    fn remove_key(&mut self, id: ResourceId, key: &ObjectKey) -> Option<Value> {
        let mut object = self.objects.remove(key)?;
        let version = self.next_version();
        meta_mut(&mut object).insert("resourceVersion".into(), json!(version.to_string()));
        self.emit(id, EventType::Deleted, None, &object);
        Some(object)
    }

    /// apiVersion and kind: filled in when absent, 400 when they name another type.
    fn check_type_meta(&self, id: ResourceId, object: &mut Value) -> Result<(), ApiError> {
        let def = &self.defs[id];
        let api_version = def.api_version();
        let map = object
            .as_object_mut()
            .ok_or_else(|| ApiError::bad_request("the request body must be a JSON object"))?;
        for (field, expected) in [
            ("apiVersion", api_version.as_str()),
            ("kind", def.kind.as_str()),
        ] {
            match map.get(field).and_then(Value::as_str) {
                None | Some("") => {
                    map.insert(field.to_string(), json!(expected));
                }
                Some(actual) if actual == expected => {}
                Some(actual) => {
                    return Err(ApiError::bad_request(format!(
                        "the API version in the data ({actual}) does not match the expected API version ({api_version}) or kind ({})",
                        def.kind
                    )));
                }
            }
        }
        Ok(())
    }

    /// kube-apiserver's create: name or generateName, namespace from the URL, system
    /// metadata stamped, status reset where a status subresource owns it.
    pub fn create(
        &mut self,
        id: ResourceId,
        namespace: Option<&str>,
        mut object: Value,
    ) -> Result<Value, ApiError> {
        self.check_type_meta(id, &mut object)?;
        let def = self.defs[id].clone();
        let meta = meta_mut(&mut object);
        if def.namespaced {
            let url_ns = namespace.unwrap_or("");
            let body_ns = map_str(meta, "namespace");
            if !body_ns.is_empty() && body_ns != url_ns {
                return Err(namespace_mismatch());
            }
            meta.insert("namespace".into(), json!(url_ns));
        } else {
            meta.remove("namespace");
        }
        let mut name = map_str(meta, "name").to_string();
        if name.is_empty() {
            match meta.get("generateName").and_then(Value::as_str) {
                Some(prefix) if !prefix.is_empty() => {
                    name = format!("{prefix}{}", ids::generated_name_suffix());
                    meta.insert("name".into(), json!(name));
                }
                _ => {
                    return Err(ApiError::invalid(
                        &def.kind,
                        "",
                        &def.group,
                        &[(
                            "metadata.name",
                            "Required value: name or generateName is required".into(),
                        )],
                    ));
                }
            }
        }
        if let Some(why) = validate::dns_subdomain_error(&name) {
            return Err(ApiError::invalid(
                &def.kind,
                &name,
                &def.group,
                &[("metadata.name", why)],
            ));
        }
        if meta
            .get("resourceVersion")
            .and_then(Value::as_str)
            .is_some_and(|rv| !rv.is_empty())
        {
            return Err(ApiError::new(
                500,
                "resourceVersion should not be set on objects to be created",
            ));
        }
        meta.insert("uid".into(), json!(ids::new_uid()));
        meta.insert("creationTimestamp".into(), json!(ids::now_rfc3339()));
        meta.insert("generation".into(), json!(1));
        for field in [
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "managedFields",
        ] {
            meta.remove(field);
        }
        if let Some(map) = object.as_object_mut() {
            match def.status {
                StatusSubresource::None => {}
                StatusSubresource::StatusOnly => {
                    map.remove("status");
                }
                StatusSubresource::StatusAndMetadata if def.kind == "Pod" => {
                    map.insert("status".into(), json!({"phase": "Pending"}));
                }
                StatusSubresource::StatusAndMetadata => {
                    map.remove("status");
                }
            }
        }
        let key = self.key(id, namespace, &name);
        if self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(self.subject(id, &name)));
        }
        Ok(self.commit(id, key, object, None))
    }

    /// 409 when the body carries a resourceVersion or uid other than the stored one.
    fn check_preconditions(
        &self,
        id: ResourceId,
        old: &Value,
        new: &Value,
    ) -> Result<(), ApiError> {
        let name = meta_str(old, "name");
        let rv = meta_str(new, "resourceVersion");
        if !rv.is_empty() && rv != meta_str(old, "resourceVersion") {
            return Err(ApiError::stale_resource_version(self.subject(id, name)));
        }
        match meta_str(new, "uid") {
            "" => Ok(()),
            uid => self.check_precondition(id, old, "uid", "UID", uid),
        }
    }

    /// 409 unless metadata `field` of the stored `old` is `wanted` (`label` names the field in
    /// the message, as kube-apiserver words it).
    fn check_precondition(
        &self,
        id: ResourceId,
        old: &Value,
        field: &str,
        label: &str,
        wanted: &str,
    ) -> Result<(), ApiError> {
        let actual = meta_str(old, field);
        if wanted == actual {
            return Ok(());
        }
        Err(ApiError::conflict(
            self.subject(id, meta_str(old, "name")),
            &format!(
                "Precondition failed: {label} in precondition: {wanted}, {label} in object meta: {actual}"
            ),
        ))
    }

    fn check_identity(
        &self,
        namespace: Option<&str>,
        name: &str,
        object: &Value,
    ) -> Result<(), ApiError> {
        let body_name = meta_str(object, "name");
        if body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let body_ns = meta_str(object, "namespace");
        if !body_ns.is_empty() && Some(body_ns) != namespace {
            return Err(namespace_mismatch());
        }
        Ok(())
    }

    /// PUT: replace the object (or its status) when the resourceVersion still matches.
    pub fn update(
        &mut self,
        id: ResourceId,
        namespace: Option<&str>,
        name: &str,
        target: Target,
        mut object: Value,
    ) -> Result<Value, ApiError> {
        self.check_type_meta(id, &mut object)?;
        self.check_identity(namespace, name, &object)?;
        let old = self.get_or_404(id, namespace, name)?;
        self.check_preconditions(id, &old, &object)?;
        self.write(id, old, object, target)
    }

    /// PATCH in any supported format; apply patches may create.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &mut self,
        id: ResourceId,
        namespace: Option<&str>,
        name: &str,
        target: Target,
        patch_type: PatchType,
        body: &[u8],
        field_manager: Option<&str>,
    ) -> Result<(Value, bool), ApiError> {
        if patch_type == PatchType::Apply && field_manager.is_none_or(str::is_empty) {
            return Err(ApiError::invalid(
                "PatchOptions",
                "",
                "meta.k8s.io",
                &[(
                    "fieldManager",
                    "Required value: is required for apply patch".into(),
                )],
            ));
        }
        let patch: Value = if patch_type == PatchType::Apply {
            serde_yaml::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?
        } else {
            serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?
        };
        let Some(old) = self.get(id, namespace, name) else {
            if patch_type == PatchType::Apply && target == Target::Main {
                let mut object = patch;
                self.check_identity(namespace, name, &object)?;
                meta_mut(&mut object).insert("name".into(), json!(name));
                return self.create(id, namespace, object).map(|o| (o, true));
            }
            return Err(ApiError::not_found(self.subject(id, name)));
        };
        let mut new = old.clone();
        match patch_type {
            PatchType::Json => patch::json_patch(&mut new, &patch).map_err(|e| match e {
                PatchError::Malformed(m) => ApiError::bad_request(m),
                PatchError::Failed(m) => ApiError::new(422, m),
            })?,
            _ => {
                if !patch.is_object() {
                    return Err(ApiError::bad_request("a merge patch must be a JSON object"));
                }
                patch::merge_patch(&mut new, &patch);
            }
        }
        self.check_type_meta(id, &mut new)?;
        self.check_identity(namespace, name, &new)?;
        self.check_preconditions(id, &old, &new)?;
        self.write(id, old, new, target).map(|o| (o, false))
    }

    /// The common tail of update and patch: keep what the client may not change,
    /// enforce pod spec immutability, skip no-ops, finish pending deletions.
    fn write(
        &mut self,
        id: ResourceId,
        old: Value,
        mut new: Value,
        target: Target,
    ) -> Result<Value, ApiError> {
        let def = self.defs[id].clone();
        let name = meta_str(&old, "name").to_string();
        let old_meta = meta(&old).clone();
        {
            let meta = meta_mut(&mut new);
            for field in [
                "name",
                "namespace",
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "resourceVersion",
            ] {
                set_or_remove(meta, field, old_meta.get(field));
            }
        }
        match (target, def.status) {
            (Target::Main, StatusSubresource::None) => {}
            (Target::Main, _) => copy_field(&old, &mut new, "status"),
            (Target::Status, StatusSubresource::StatusOnly | StatusSubresource::None) => {
                let mut replaced = old.clone();
                copy_field(&new, &mut replaced, "status");
                new = replaced;
            }
            (Target::Status, StatusSubresource::StatusAndMetadata) => {
                copy_field(&old, &mut new, "spec");
                set_or_remove(
                    meta_mut(&mut new),
                    "ownerReferences",
                    old_meta.get("ownerReferences"),
                );
            }
        }
        if def.kind == "Pod"
            && def.group.is_empty()
            && target == Target::Main
            && let Some(why) = validate::pod_spec_update_error(&old, &new)
        {
            return Err(ApiError::invalid(
                &def.kind,
                &name,
                &def.group,
                &[("spec", why)],
            ));
        }
        if new == old {
            return Ok(old);
        }
        if old.get("spec") != new.get("spec")
            && let Some(generation) = old_meta.get("generation").and_then(Value::as_i64)
        {
            meta_mut(&mut new).insert("generation".into(), json!(generation + 1));
        }
        let key = self.key(id, old_meta["namespace"].as_str(), &name);
        if is_deleting(&new) && !has_finalizers(&new) {
            self.objects.insert(key.clone(), new);
            return self
                .remove_key(id, &key)
                .ok_or_else(|| ApiError::not_found(self.subject(id, &name)));
        }
        Ok(self.commit(id, key, new, Some(old)))
    }

    /// DELETE: preconditions, then removal, or a deletionTimestamp while finalizers remain.
    pub fn delete(
        &mut self,
        id: ResourceId,
        namespace: Option<&str>,
        name: &str,
        options: &Value,
    ) -> Result<Value, ApiError> {
        let old = self.get_or_404(id, namespace, name)?;
        let preconditions = &options["preconditions"];
        for (field, label) in [("uid", "UID"), ("resourceVersion", "ResourceVersion")] {
            if let Some(wanted) = preconditions[field].as_str() {
                self.check_precondition(id, &old, field, label, wanted)?;
            }
        }
        let key = self.key(id, namespace, name);
        if has_finalizers(&old) {
            if is_deleting(&old) {
                return Ok(old);
            }
            let mut new = old.clone();
            let meta = meta_mut(&mut new);
            meta.insert("deletionTimestamp".into(), json!(ids::now_rfc3339()));
            meta.insert("deletionGracePeriodSeconds".into(), json!(0));
            return Ok(self.commit(id, key, new, Some(old)));
        }
        self.remove_key(id, &key)
            .ok_or_else(|| ApiError::not_found(self.subject(id, name)))
    }

    /// The fixture's own write: create or replace as given, keeping status and filling
    /// in only the system metadata the object lacks.
    pub fn upsert(&mut self, id: ResourceId, mut object: Value) -> Result<Value, String> {
        let def = self.defs[id].clone();
        let namespaced = def.namespaced;
        let meta = meta_mut(&mut object);
        let name = map_str(meta, "name").to_string();
        if name.is_empty() {
            return Err(format!("{} without metadata.name", def.kind));
        }
        if namespaced {
            if map_str(meta, "namespace").is_empty() {
                meta.insert("namespace".into(), json!("default"));
            }
        } else {
            meta.remove("namespace");
        }
        let ns = meta
            .get("namespace")
            .and_then(Value::as_str)
            .map(str::to_string);
        let key = self.key(id, ns.as_deref(), &name);
        let previous = self.objects.get(&key).cloned();
        let meta = meta_mut(&mut object);
        for (field, fresh) in [
            ("uid", json!(ids::new_uid())),
            ("creationTimestamp", json!(ids::now_rfc3339())),
            ("generation", json!(1)),
        ] {
            if meta.get(field).is_none_or(Value::is_null) {
                let kept = previous
                    .as_ref()
                    .and_then(|p| p["metadata"].get(field).cloned());
                meta.insert(field.to_string(), kept.unwrap_or(fresh));
            }
        }
        if let Some(map) = object.as_object_mut() {
            map.insert("apiVersion".into(), json!(def.api_version()));
            map.insert("kind".into(), json!(def.kind));
        }
        Ok(self.commit(id, key, object, previous))
    }

    /// The fixture's own merge patch: no subresource rules, no preconditions.
    pub fn merge_unchecked(
        &mut self,
        id: ResourceId,
        namespace: Option<&str>,
        name: &str,
        patch: &Value,
    ) -> Option<Value> {
        let key = self.key(id, namespace, name);
        let old = self.objects.get(&key)?.clone();
        let mut new = old.clone();
        patch::merge_patch(&mut new, patch);
        for field in ["name", "namespace", "uid", "resourceVersion"] {
            set_or_remove(meta_mut(&mut new), field, old["metadata"].get(field));
        }
        if new == old {
            return Some(old);
        }
        Some(self.commit(id, key, new, Some(old)))
    }

    /// The fixture's own delete: immediate, whatever the finalizers.
    pub fn remove(&mut self, id: ResourceId, namespace: Option<&str>, name: &str) -> Option<Value> {
        let key = self.key(id, namespace, name);
        self.remove_key(id, &key)
    }

    /// Starts a watch: the snapshot or replayed history, and a receiver for what follows.
    pub fn subscribe(
        &self,
        id: ResourceId,
        filter: &ObjectFilter,
        from: WatchFrom,
    ) -> Result<Subscription, ApiError> {
        let initial = match from {
            WatchFrom::Snapshot => self
                .list(id, filter)
                .0
                .into_iter()
                .map(|o| (EventType::Added, o))
                .collect(),
            WatchFrom::After(version) => {
                if version < self.oldest_watchable {
                    return Err(ApiError::expired(version, self.oldest_watchable));
                }
                self.history
                    .iter()
                    .filter(|e| e.resource_version > version && e.resource == id)
                    .filter_map(|e| filter.view(e).map(|t| (t, e.object.clone())))
                    .collect()
            }
        };
        Ok(Subscription {
            initial,
            receiver: self.events.subscribe(),
            resource_version: self.resource_version,
        })
    }

    /// Forgets the change history, as etcd compaction does: watches from any older
    /// resourceVersion now get 410 Expired and clients must list again.
    pub fn expire_history(&mut self) {
        self.history.clear();
        // A version of its own, so that resuming from the newest version handed out
        // before the compaction fails too, while a list taken after it may be watched.
        self.oldest_watchable = self.next_version();
    }

    pub fn parse_resource_version(value: &str) -> Result<u64, ApiError> {
        parse_resource_version(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PODS: ResourceId = 0;
    const NADS: ResourceId = 4;

    fn store() -> Store {
        Store::new(ResourceDef::defaults(), 100)
    }

    fn pod(name: &str) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "web"}},
            "spec": {"nodeName": "node-a", "containers": [{"name": "c", "image": "img:1"}]},
        })
    }

    /// PATCH of pod `name` in ns1, without a field manager.
    fn patch_pod(
        s: &mut Store,
        name: &str,
        target: Target,
        patch_type: PatchType,
        body: &[u8],
    ) -> Result<(Value, bool), ApiError> {
        s.patch(PODS, Some("ns1"), name, target, patch_type, body, None)
    }

    fn rv(object: &Value) -> u64 {
        meta_str(object, "resourceVersion").parse().unwrap()
    }

    #[test]
    fn create_stamps_system_metadata() {
        let mut s = store();
        let created = s.create(PODS, Some("ns1"), pod("web")).unwrap();
        assert_eq!(created["metadata"]["namespace"], "ns1");
        assert_eq!(created["metadata"]["uid"].as_str().unwrap().len(), 36);
        assert!(
            created["metadata"]["creationTimestamp"]
                .as_str()
                .unwrap()
                .ends_with('Z')
        );
        assert_eq!(created["metadata"]["generation"], 1);
        assert_eq!(created["status"], json!({"phase": "Pending"}));
        assert_eq!(rv(&created), 1);
        let err = s.create(PODS, Some("ns1"), pod("web")).unwrap_err();
        assert_eq!((err.code, err.reason.as_str()), (409, "AlreadyExists"));
    }

    #[test]
    fn create_validates_names_and_namespaces() {
        let mut s = store();
        let mut unnamed = pod("");
        let err = s.create(PODS, Some("ns1"), unnamed.clone()).unwrap_err();
        assert_eq!(err.code, 422);
        unnamed["metadata"]["generateName"] = json!("web-");
        let generated = s.create(PODS, Some("ns1"), unnamed).unwrap();
        let name = generated["metadata"]["name"].as_str().unwrap();
        assert!(name.starts_with("web-") && name.len() == 9, "{name}");
        assert_eq!(
            s.create(PODS, Some("ns1"), pod("Bad_Name"))
                .unwrap_err()
                .code,
            422
        );
        let mut other_ns = pod("x");
        other_ns["metadata"]["namespace"] = json!("ns2");
        assert_eq!(s.create(PODS, Some("ns1"), other_ns).unwrap_err().code, 400);
        let mut wrong_kind = pod("y");
        wrong_kind["kind"] = json!("Node");
        assert_eq!(
            s.create(PODS, Some("ns1"), wrong_kind).unwrap_err().code,
            400
        );
    }

    #[test]
    fn stale_updates_conflict() {
        let mut s = store();
        let created = s.create(PODS, Some("ns1"), pod("web")).unwrap();
        let mut first = created.clone();
        first["metadata"]["labels"]["v"] = json!("1");
        let updated = s
            .update(PODS, Some("ns1"), "web", Target::Main, first)
            .unwrap();
        assert!(rv(&updated) > rv(&created));
        let mut stale = created.clone();
        stale["metadata"]["labels"]["v"] = json!("2");
        let err = s
            .update(PODS, Some("ns1"), "web", Target::Main, stale)
            .unwrap_err();
        assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
        assert!(err.message.contains("the object has been modified"));
    }

    #[test]
    fn main_writes_keep_status_and_status_writes_keep_spec() {
        let mut s = store();
        s.create(PODS, Some("ns1"), pod("web")).unwrap();
        let patch = br#"{"status": {"phase": "Running"}, "metadata": {"labels": {"x": "y"}}}"#;
        let (main, _) = patch_pod(&mut s, "web", Target::Main, PatchType::Merge, patch).unwrap();
        assert_eq!(main["status"]["phase"], "Pending");
        assert_eq!(main["metadata"]["labels"]["x"], "y");
        let patch = br#"{"status": {"phase": "Running"}, "spec": {"nodeName": "b"},
            "metadata": {"annotations": {"k8s.v1.cni.cncf.io/network-status": "[]"}}}"#;
        let (status, _) =
            patch_pod(&mut s, "web", Target::Status, PatchType::Merge, patch).unwrap();
        assert_eq!(status["status"]["phase"], "Running");
        assert_eq!(status["spec"]["nodeName"], "node-a");
        assert_eq!(
            status["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"],
            "[]"
        );
    }

    #[test]
    fn pod_spec_is_mostly_immutable() {
        let mut s = store();
        s.create(PODS, Some("ns1"), pod("web")).unwrap();
        let err = patch_pod(
            &mut s,
            "web",
            Target::Main,
            PatchType::Merge,
            br#"{"spec":{"nodeName":"b"}}"#,
        )
        .unwrap_err();
        assert_eq!(err.code, 422);
        let image = br#"[{"op":"replace","path":"/spec/containers/0/image","value":"img:2"}]"#;
        let (patched, _) = patch_pod(&mut s, "web", Target::Main, PatchType::Json, image).unwrap();
        assert_eq!(patched["spec"]["containers"][0]["image"], "img:2");
        assert_eq!(patched["metadata"]["generation"], 2);
    }

    #[test]
    fn patches_with_a_stale_resource_version_conflict() {
        let mut s = store();
        s.create(PODS, Some("ns1"), pod("web")).unwrap();
        let stale = br#"{"metadata": {"resourceVersion": "999", "labels": {"a": "b"}}}"#;
        let err = patch_pod(&mut s, "web", Target::Main, PatchType::Merge, stale).unwrap_err();
        assert_eq!(err.code, 409);
        let test_fails = br#"[{"op":"test","path":"/metadata/name","value":"other"}]"#;
        let err = patch_pod(&mut s, "web", Target::Main, PatchType::Json, test_fails).unwrap_err();
        assert_eq!(err.code, 422);
        let missing = patch_pod(&mut s, "nope", Target::Main, PatchType::Merge, b"{}").unwrap_err();
        assert_eq!(missing.code, 404);
    }

    #[test]
    fn no_op_writes_keep_the_resource_version() {
        let mut s = store();
        let created = s.create(PODS, Some("ns1"), pod("web")).unwrap();
        let (same, _) = patch_pod(
            &mut s,
            "web",
            Target::Main,
            PatchType::Merge,
            br#"{"metadata":{"labels":{"app":"web"}}}"#,
        )
        .unwrap();
        assert_eq!(rv(&same), rv(&created));
        assert_eq!(s.resource_version(), rv(&created));
    }

    #[test]
    fn apply_creates_and_requires_a_field_manager() {
        let mut s = store();
        let body = b"apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers: []\n";
        let err = patch_pod(&mut s, "web", Target::Main, PatchType::Apply, body).unwrap_err();
        assert_eq!(err.code, 422);
        let (created, was_created) = s
            .patch(
                PODS,
                Some("ns1"),
                "web",
                Target::Main,
                PatchType::Apply,
                body,
                Some("test"),
            )
            .unwrap();
        assert!(was_created);
        assert_eq!(created["metadata"]["namespace"], "ns1");
    }

    #[test]
    fn finalizers_hold_deletion_until_removed() {
        let mut s = store();
        let mut nad = json!({
            "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": "net1", "finalizers": ["example.com/hold"]},
            "spec": {"config": "{}"},
        });
        s.create(NADS, Some("ns1"), nad.clone()).unwrap();
        let pending = s.delete(NADS, Some("ns1"), "net1", &json!({})).unwrap();
        assert!(pending["metadata"]["deletionTimestamp"].is_string());
        assert!(s.get(NADS, Some("ns1"), "net1").is_some());
        nad["metadata"]["finalizers"] = json!([]);
        let gone = s
            .update(NADS, Some("ns1"), "net1", Target::Main, nad)
            .unwrap();
        assert!(gone["metadata"]["deletionTimestamp"].is_string());
        assert!(s.get(NADS, Some("ns1"), "net1").is_none());
    }

    #[test]
    fn delete_preconditions_are_checked() {
        const CONFLICT: &str =
            "Operation cannot be fulfilled on pods \"web\": Precondition failed: ";
        let mut s = store();
        let created = s.create(PODS, Some("ns1"), pod("web")).unwrap();
        let uid = meta_str(&created, "uid");
        for (preconditions, message) in [
            (
                json!({"uid": "other"}),
                format!("{CONFLICT}UID in precondition: other, UID in object meta: {uid}"),
            ),
            (
                json!({"uid": uid, "resourceVersion": "9"}),
                format!(
                    "{CONFLICT}ResourceVersion in precondition: 9, ResourceVersion in object meta: 1"
                ),
            ),
        ] {
            let options = json!({ "preconditions": preconditions });
            let err = s.delete(PODS, Some("ns1"), "web", &options).unwrap_err();
            assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
            assert_eq!(err.message, message);
        }
        // The same precondition on an update: a uid in the body.
        let mut other_uid = created.clone();
        other_uid["metadata"]["uid"] = json!("other");
        let err = s
            .update(PODS, Some("ns1"), "web", Target::Main, other_uid)
            .unwrap_err();
        assert_eq!(
            err.message,
            format!("{CONFLICT}UID in precondition: other, UID in object meta: {uid}")
        );
        let deleted = s.delete(PODS, Some("ns1"), "web", &json!({})).unwrap();
        assert_eq!(deleted["metadata"]["name"], "web");
        assert_eq!(
            s.delete(PODS, Some("ns1"), "web", &json!({}))
                .unwrap_err()
                .code,
            404
        );
    }

    #[test]
    fn history_replays_and_expires() {
        let mut s = store();
        let filter = ObjectFilter::default();
        s.create(PODS, Some("ns1"), pod("a")).unwrap();
        let after = s.resource_version();
        s.create(PODS, Some("ns1"), pod("b")).unwrap();
        s.remove(PODS, Some("ns1"), "a");
        let sub = s.subscribe(PODS, &filter, WatchFrom::After(after)).unwrap();
        let seen: Vec<_> = sub
            .initial
            .iter()
            .map(|(t, o)| (*t, o["metadata"]["name"].as_str().unwrap().to_string()))
            .collect();
        assert_eq!(
            seen,
            vec![
                (EventType::Added, "b".into()),
                (EventType::Deleted, "a".into())
            ]
        );
        let newest = s.resource_version();
        s.expire_history();
        for stale in [after, newest] {
            let err = s
                .subscribe(PODS, &filter, WatchFrom::After(stale))
                .err()
                .unwrap();
            assert_eq!((err.code, err.reason.as_str()), (410, "Expired"));
        }
        // A list taken after the compaction can be watched from.
        let (_, listed) = s.list(PODS, &filter);
        assert!(s.subscribe(PODS, &filter, WatchFrom::After(listed)).is_ok());
    }

    #[test]
    fn watchers_see_objects_leave_their_selector() {
        let filter = ObjectFilter {
            labels: LabelSelector::parse("app=web").unwrap(),
            ..Default::default()
        };
        let event = |previous: Option<Value>, object: Value| StoreEvent {
            resource: PODS,
            resource_version: 1,
            event_type: if previous.is_some() {
                EventType::Modified
            } else {
                EventType::Added
            },
            previous,
            object,
        };
        let web = pod("p");
        let mut db = pod("p");
        db["metadata"]["labels"]["app"] = json!("db");
        assert_eq!(
            filter.view(&event(Some(web.clone()), db.clone())),
            Some(EventType::Deleted)
        );
        assert_eq!(
            filter.view(&event(Some(db.clone()), web.clone())),
            Some(EventType::Added)
        );
        assert_eq!(filter.view(&event(Some(db.clone()), db.clone())), None);
        assert_eq!(filter.view(&event(None, web)), Some(EventType::Added));
    }

    #[test]
    fn upsert_keeps_status_and_fills_metadata() {
        let mut s = store();
        let mut p = pod("web");
        p["status"] = json!({"phase": "Running", "podIP": "10.0.0.5"});
        let stored = s.upsert(PODS, p.clone()).unwrap();
        assert_eq!(stored["metadata"]["namespace"], "default");
        assert_eq!(stored["status"]["podIP"], "10.0.0.5");
        let uid = stored["metadata"]["uid"].clone();
        let again = s.upsert(PODS, p).unwrap();
        assert_eq!(again["metadata"]["uid"], uid);
        assert!(rv(&again) > rv(&stored));
    }
}
