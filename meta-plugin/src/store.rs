//! The attachment store: one crash-safe record per container in `cniDir`, written before any
//! delegate runs and updated after each one, so DEL needs neither the API server, the NAD, the pod
//! nor the netns.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::MetaError;

const RECORD_FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AttachmentState {
    /// Recorded before the delegate ran: DEL must still run it, the delegate may have half-built.
    Planned,
    /// The delegate's ADD succeeded.
    Added,
    /// A DEL was attempted and failed: the next DEL retries it.
    DeleteFailed,
}

/// One network of one container, as it was (or is about to be) handed to its delegate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentEntry {
    /// `namespace/name` of the NAD, or the CNI network name of the cluster network.
    pub network: String,
    pub ifname: String,
    #[serde(default)]
    pub is_default: bool,
    /// The delegate config (conf or conflist) exactly as invoked, runtimeConfig and args included.
    pub conf: Value,
    pub state: AttachmentState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_info_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentRecord {
    pub format: u32,
    pub container_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
    pub cni_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodRef>,
    /// CNI_ARGS of the ADD, handed again to every delegate on DEL.
    #[serde(default)]
    pub cni_args: Vec<(String, String)>,
    pub attachments: Vec<AttachmentEntry>,
}

impl AttachmentRecord {
    pub fn new(container_id: &str, netns: Option<String>, cni_version: &str) -> Self {
        AttachmentRecord {
            format: RECORD_FORMAT,
            container_id: container_id.to_string(),
            netns,
            cni_version: cni_version.to_string(),
            pod: None,
            cni_args: Vec::new(),
            attachments: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AttachmentStore {
    dir: PathBuf,
}

impl AttachmentStore {
    pub fn new(cni_dir: &Path) -> Self {
        AttachmentStore {
            dir: cni_dir.join("attachments"),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path_for(&self, container_id: &str) -> PathBuf {
        self.dir.join(format!("{container_id}.json"))
    }

    /// Writes the record atomically: temp file, fsync, rename, fsync of the directory. A crash leaves
    /// either the old record or the new one, never a torn file.
    pub fn save(&self, record: &AttachmentRecord) -> Result<(), MetaError> {
        self.write(record, true)
    }

    /// Atomic like `save` (never a torn file) but not flushed to disk: for updates whose loss in
    /// a power cut only leaves an older, still valid record.
    pub fn save_quick(&self, record: &AttachmentRecord) -> Result<(), MetaError> {
        self.write(record, false)
    }

    fn write(&self, record: &AttachmentRecord, durable: bool) -> Result<(), MetaError> {
        let path = self.path_for(&record.container_id);
        let io = |e: std::io::Error| MetaError::Store {
            path: path.clone(),
            msg: e.to_string(),
        };
        fs::create_dir_all(&self.dir).map_err(io)?;
        let tmp = self.dir.join(format!(
            ".{}.json.tmp-{}",
            record.container_id,
            std::process::id()
        ));
        let bytes = serde_json::to_vec_pretty(record).map_err(|e| MetaError::Store {
            path: path.clone(),
            msg: e.to_string(),
        })?;
        let write = || -> std::io::Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            f.write_all(&bytes)?;
            if durable {
                f.sync_all()?;
            }
            fs::rename(&tmp, &path)?;
            if durable {
                File::open(&self.dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            io(e)
        })
    }

    /// Loads a container's record. A missing record is `None`; a corrupt one is an error naming the
    /// file, never a silent success.
    pub fn load(&self, container_id: &str) -> Result<Option<AttachmentRecord>, MetaError> {
        let path = self.path_for(container_id);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(MetaError::Store {
                    path,
                    msg: e.to_string(),
                });
            }
        };
        let record: AttachmentRecord =
            serde_json::from_slice(&bytes).map_err(|e| MetaError::CorruptRecord {
                path: path.clone(),
                msg: e.to_string(),
            })?;
        if record.format != RECORD_FORMAT || record.container_id != container_id {
            return Err(MetaError::CorruptRecord {
                path,
                msg: format!(
                    "format {} for container {:?}, expected format {RECORD_FORMAT} for {container_id:?}",
                    record.format, record.container_id
                ),
            });
        }
        Ok(Some(record))
    }

    pub fn remove(&self, container_id: &str) -> Result<(), MetaError> {
        let path = self.path_for(container_id);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(MetaError::Store {
                path,
                msg: e.to_string(),
            }),
        }
    }

    /// Container IDs that have a record, for GC.
    pub fn container_ids(&self) -> Result<Vec<String>, MetaError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(MetaError::Store {
                    path: self.dir.clone(),
                    msg: e.to_string(),
                });
            }
        };
        let mut ids: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                if name.starts_with('.') {
                    return None;
                }
                name.strip_suffix(".json").map(str::to_string)
            })
            .collect();
        ids.sort();
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record() -> AttachmentRecord {
        let mut r = AttachmentRecord::new("c1", Some("/run/netns/p1".into()), "1.0.0");
        r.attachments.push(AttachmentEntry {
            network: "default/macvlan-a".into(),
            ifname: "net1".into(),
            is_default: false,
            conf: json!({"cniVersion":"1.0.0","name":"macvlan-a","type":"macvlan"}),
            state: AttachmentState::Planned,
            result: None,
            device_info_file: None,
        });
        r
    }

    #[test]
    fn save_load_remove_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = AttachmentStore::new(dir.path());
        assert_eq!(store.load("c1").unwrap(), None);
        store.save(&record()).unwrap();
        assert_eq!(store.load("c1").unwrap(), Some(record()));
        assert_eq!(store.container_ids().unwrap(), vec!["c1".to_string()]);
        // No temp file is left next to the record.
        let names: Vec<_> = fs::read_dir(store.dir()).unwrap().collect();
        assert_eq!(names.len(), 1);
        store.remove("c1").unwrap();
        store.remove("c1").unwrap();
        assert_eq!(store.load("c1").unwrap(), None);
    }

    #[test]
    fn device_info_file_is_kept_across_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let store = AttachmentStore::new(dir.path());
        let mut r = record();
        r.attachments[0].device_info_file =
            Some("/var/run/k8s.cni.cncf.io/devinfo/cni/macvlan-a-c1_net1".into());
        store.save(&r).unwrap();
        let text = fs::read_to_string(store.path_for("c1")).unwrap();
        assert!(text.contains("\"deviceInfoFile\""), "{text}");
        assert_eq!(store.load("c1").unwrap(), Some(r));
        // An entry without a file leaves the key out, like records written before it existed.
        assert!(
            !serde_json::to_string(&record())
                .unwrap()
                .contains("deviceInfoFile")
        );
    }

    #[test]
    fn corrupt_record_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = AttachmentStore::new(dir.path());
        fs::create_dir_all(store.dir()).unwrap();
        fs::write(store.path_for("c1"), b"{\"format\":1,\"contai").unwrap();
        let err = store.load("c1").unwrap_err();
        assert!(matches!(err, MetaError::CorruptRecord { .. }));
        assert!(err.to_string().contains("c1.json"), "{err}");
    }

    #[test]
    fn record_of_another_container_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let store = AttachmentStore::new(dir.path());
        store.save(&record()).unwrap();
        fs::copy(store.path_for("c1"), store.path_for("c2")).unwrap();
        assert!(matches!(
            store.load("c2"),
            Err(MetaError::CorruptRecord { .. })
        ));
    }
}
