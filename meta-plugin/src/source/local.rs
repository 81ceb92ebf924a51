//! A folder of kubectl-format YAML: `<dir>/pods/*.yaml` and `<dir>/nads/*.yaml` (multi-document
//! files and `kind: List` are fine). network-status is written back into the pod's file.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::{ClusterSource, NadInfo, PodEvent, PodInfo};
use crate::error::MetaError;

pub use multinet_crds::NETWORK_STATUS_ANNOTATION as NETWORK_STATUS;

pub struct LocalSource {
    dir: PathBuf,
}

/// One object and the file it came from.
struct Loaded {
    file: PathBuf,
    object: Value,
}

impl LocalSource {
    pub fn new(dir: &Path) -> Self {
        LocalSource {
            dir: dir.to_path_buf(),
        }
    }

    fn load_dir(&self, sub: &str) -> Result<Vec<Loaded>, MetaError> {
        let dir = self.dir.join(sub);
        let mut files: Vec<PathBuf> = match fs::read_dir(&dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    matches!(
                        p.extension().and_then(|e| e.to_str()),
                        Some("yaml" | "yml" | "json")
                    )
                })
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(MetaError::Io(format!("{}: {e}", dir.display()))),
        };
        files.sort();
        let mut out = Vec::new();
        for file in files {
            for object in read_objects(&file)? {
                out.push(Loaded {
                    file: file.clone(),
                    object,
                });
            }
        }
        Ok(out)
    }

    fn find(
        &self,
        sub: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Loaded>, MetaError> {
        Ok(self.load_dir(sub)?.into_iter().find(|l| {
            l.object.get("kind").and_then(Value::as_str) == Some(kind)
                && meta_str(&l.object, "name") == Some(name)
                && meta_str(&l.object, "namespace").unwrap_or("default") == namespace
        }))
    }
}

fn read_objects(file: &Path) -> Result<Vec<Value>, MetaError> {
    let text =
        fs::read_to_string(file).map_err(|e| MetaError::Io(format!("{}: {e}", file.display())))?;
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value = Value::deserialize(doc)
            .map_err(|e| MetaError::Decode(format!("{}: {e}", file.display())))?;
        match value.get("kind").and_then(Value::as_str) {
            Some("List") => {
                if let Some(items) = value.get("items").and_then(Value::as_array) {
                    out.extend(items.iter().cloned());
                }
            }
            Some(_) => out.push(value),
            None => {}
        }
    }
    Ok(out)
}

fn meta_str<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(key)?.as_str()
}

fn annotations(obj: &Value) -> BTreeMap<String, String> {
    obj.get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

impl ClusterSource for LocalSource {
    async fn pod(&self, namespace: &str, name: &str) -> Result<Option<PodInfo>, MetaError> {
        Ok(self.find("pods", "Pod", namespace, name)?.map(|l| PodInfo {
            namespace: namespace.to_string(),
            name: name.to_string(),
            uid: meta_str(&l.object, "uid").map(str::to_string),
            annotations: annotations(&l.object),
        }))
    }

    async fn nad(&self, namespace: &str, name: &str) -> Result<Option<NadInfo>, MetaError> {
        Ok(self
            .find("nads", "NetworkAttachmentDefinition", namespace, name)?
            .map(|l| NadInfo {
                namespace: namespace.to_string(),
                name: name.to_string(),
                config: l
                    .object
                    .get("spec")
                    .and_then(|s| s.get("config"))
                    .and_then(Value::as_str)
                    .map(str::to_string),
                annotations: annotations(&l.object),
            }))
    }

    async fn write_network_status(
        &self,
        namespace: &str,
        name: &str,
        status: &str,
    ) -> Result<(), MetaError> {
        let Some(found) = self.find("pods", "Pod", namespace, name)? else {
            return Ok(());
        };
        // Rewrite the whole file, replacing only this pod's annotation.
        let mut objects = read_objects(&found.file)?;
        for obj in objects.iter_mut() {
            let is_it = obj.get("kind").and_then(Value::as_str) == Some("Pod")
                && meta_str(obj, "name") == Some(name)
                && meta_str(obj, "namespace").unwrap_or("default") == namespace;
            if !is_it {
                continue;
            }
            let meta = obj
                .as_object_mut()
                .and_then(|o| o.get_mut("metadata"))
                .and_then(Value::as_object_mut)
                .ok_or_else(|| MetaError::Internal("pod without metadata".into()))?;
            let ann = meta
                .entry("annotations")
                .or_insert_with(|| Value::Object(Default::default()));
            if let Value::Object(ann) = ann {
                ann.insert(NETWORK_STATUS.into(), Value::String(status.into()));
            }
        }
        let mut text = String::new();
        for (i, obj) in objects.iter().enumerate() {
            if i > 0 {
                text.push_str("---\n");
            }
            text.push_str(
                &serde_yaml::to_string(obj).map_err(|e| MetaError::Internal(e.to_string()))?,
            );
        }
        let tmp = found.file.with_extension("yaml.tmp");
        fs::write(&tmp, text)
            .and_then(|()| fs::rename(&tmp, &found.file))
            .map_err(|e| MetaError::Io(format!("{}: {e}", found.file.display())))
    }

    /// A folder has no event stream to show them in.
    async fn record_events(&self, _pod: &PodInfo, _events: &[PodEvent]) -> Result<(), MetaError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn finds_pods_and_nads_and_writes_status_back() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("pods")).unwrap();
        fs::create_dir_all(dir.path().join("nads")).unwrap();
        fs::write(
            dir.path().join("pods/p.yaml"),
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  namespace: demo\n  uid: u1\n  annotations:\n    k8s.v1.cni.cncf.io/networks: m1\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: b\n",
        )
        .unwrap();
        fs::write(
            dir.path().join("nads/m.yaml"),
            "apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\nmetadata:\n  name: m1\n  namespace: demo\nspec:\n  config: '{\"type\":\"macvlan\"}'\n",
        )
        .unwrap();
        let src = LocalSource::new(dir.path());
        let pod = block_on(src.pod("demo", "a")).unwrap().unwrap();
        assert_eq!(pod.uid.as_deref(), Some("u1"));
        assert_eq!(pod.annotations["k8s.v1.cni.cncf.io/networks"], "m1");
        assert!(block_on(src.pod("default", "b")).unwrap().is_some());
        assert!(block_on(src.pod("demo", "b")).unwrap().is_none());
        let nad = block_on(src.nad("demo", "m1")).unwrap().unwrap();
        assert_eq!(nad.config.as_deref(), Some("{\"type\":\"macvlan\"}"));
        block_on(src.write_network_status("demo", "a", "[{\"name\":\"x\"}]")).unwrap();
        let pod = block_on(src.pod("demo", "a")).unwrap().unwrap();
        assert_eq!(pod.annotations[NETWORK_STATUS], "[{\"name\":\"x\"}]");
        // The other pod in the same file survived the rewrite.
        assert!(block_on(src.pod("default", "b")).unwrap().is_some());
        // A vanished pod is fine.
        block_on(src.write_network_status("demo", "gone", "[]")).unwrap();
    }
}
