//! A folder of kubectl-format YAML: `<dir>/pods/*.yaml` and `<dir>/nads/*.yaml`, and for DRA
//! device IDs `<dir>/resourceclaims/*.yaml` and `<dir>/resourceslices/*.yaml` (multi-document
//! files, JSON and `kind: List` are fine). network-status is written back into the pod's file.
//!
//! Safe under concurrent ADDs: a status write reads, edits and replaces the pod's file under an
//! exclusive flock on `<dir>/pods/.multinet.lock`, through a unique temp file and a rename, so
//! writers never lose each other's updates and readers never see half a file. A file that does
//! not parse fails only the lookups it could answer (a pod found in another file is served); the
//! error names the file and the line and column, never its text.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use multinet_cni::files::{PRIVATE_FILE, WriteOptions, write_atomic};
use nix::fcntl::{Flock, FlockArg};
use serde::Deserialize;
use serde_json::Value;

use super::dra::{self, ClaimDevice, ClaimInfo, NetworkData, PodClaims, PublishedDevice};
use super::{ClusterSource, NadInfo, PodEvent, PodInfo};
use crate::error::MetaError;
use k8s_openapi::api::core::v1::{
    PodExtendedResourceClaimStatus, PodResourceClaim, PodResourceClaimStatus,
};
use k8s_openapi::api::resource::v1::{ResourceClaim, ResourceSlice};

pub use multinet_crds::NETWORK_STATUS_ANNOTATION as NETWORK_STATUS;

/// The lock file status writers share, in the pods folder (not a `.yaml`, so never read as one).
pub const LOCK_FILE: &str = ".multinet.lock";

pub struct LocalSource {
    dir: PathBuf,
}

/// One object and the file it came from.
struct Loaded {
    file: PathBuf,
    object: Value,
}

/// What a folder held: the objects of every readable file, and the error of every other file.
struct Folder {
    objects: Vec<Loaded>,
    unreadable: Vec<MetaError>,
}

impl LocalSource {
    pub fn new(dir: &Path) -> Self {
        LocalSource {
            dir: dir.to_path_buf(),
        }
    }

    fn load_dir(&self, sub: &str) -> Result<Folder, MetaError> {
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
            Err(e) => return Err(MetaError::io(dir.display(), e)),
        };
        files.sort();
        let mut folder = Folder {
            objects: Vec::new(),
            unreadable: Vec::new(),
        };
        for file in files {
            match read_objects(&file) {
                Ok(objects) => folder
                    .objects
                    .extend(objects.into_iter().map(|object| Loaded {
                        file: file.clone(),
                        object,
                    })),
                Err(e) => folder.unreadable.push(e),
            }
        }
        Ok(folder)
    }

    /// The object, from whichever file holds it. When no readable file does and some file could
    /// not be read, the object may be in that file: the error names it rather than answering
    /// "not found".
    fn find(
        &self,
        sub: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Loaded>, MetaError> {
        let folder = self.load_dir(sub)?;
        if let Some(found) = folder
            .objects
            .into_iter()
            .find(|l| is_object(&l.object, kind, namespace, name))
        {
            return Ok(Some(found));
        }
        let mut unreadable = folder.unreadable;
        match unreadable.len() {
            0 => Ok(None),
            1 => Err(unreadable.remove(0)),
            _ => Err(MetaError::Many(unreadable)),
        }
    }

    /// Takes the status writers' lock, held until the returned guard drops; None when there is
    /// no pods folder (so no pod to write to).
    fn lock_pods(&self) -> Result<Option<Flock<File>>, MetaError> {
        let path = self.dir.join("pods").join(LOCK_FILE);
        let file = match OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .mode(PRIVATE_FILE)
            // A lock path someone replaced with a symlink is not followed.
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(MetaError::io(format!("opening lock {}", path.display()), e));
            }
        };
        Flock::lock(file, FlockArg::LockExclusive)
            .map(Some)
            .map_err(|(_, errno)| MetaError::io(format!("locking {}", path.display()), errno))
    }
}

fn is_object(obj: &Value, kind: &str, namespace: &str, name: &str) -> bool {
    obj.get("kind").and_then(Value::as_str) == Some(kind)
        && meta_str(obj, "name") == Some(name)
        && meta_str(obj, "namespace").unwrap_or("default") == namespace
}

/// Where a YAML error is, never what the text says there: the file may hold secrets.
fn yaml_error(file: &Path, doc: usize, e: &serde_yaml::Error) -> MetaError {
    let place = match e.location() {
        Some(l) => format!("line {} column {}", l.line(), l.column()),
        None => format!("document {}", doc + 1),
    };
    MetaError::Decode(format!(
        "{}: not a valid Kubernetes YAML file (error at {place})",
        file.display()
    ))
}

fn read_objects(file: &Path) -> Result<Vec<Value>, MetaError> {
    let text = fs::read_to_string(file).map_err(|e| MetaError::io(file.display(), e))?;
    let mut out = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(&text).enumerate() {
        let value = Value::deserialize(doc).map_err(|e| yaml_error(file, i, &e))?;
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

/// The part of `obj` at JSON pointer `pointer` as a `T`; None when absent or of another shape
/// (a local folder's pod that names no claims, or names them oddly, simply has none).
fn part<T: serde::de::DeserializeOwned>(obj: &Value, pointer: &str) -> Option<T> {
    serde_json::from_value(obj.pointer(pointer)?.clone()).ok()
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
    async fn pod(
        &self,
        namespace: &str,
        name: &str,
        _uid: Option<&str>,
    ) -> Result<Option<PodInfo>, MetaError> {
        Ok(self.find("pods", "Pod", namespace, name)?.map(|l| {
            let spec_claims: Option<Vec<PodResourceClaim>> =
                part(&l.object, "/spec/resourceClaims");
            let statuses: Option<Vec<PodResourceClaimStatus>> =
                part(&l.object, "/status/resourceClaimStatuses");
            let extended: Option<PodExtendedResourceClaimStatus> =
                part(&l.object, "/status/extendedResourceClaimStatus");
            PodInfo {
                namespace: namespace.to_string(),
                name: name.to_string(),
                uid: meta_str(&l.object, "uid").map(str::to_string),
                annotations: annotations(&l.object),
                node_name: part(&l.object, "/spec/nodeName"),
                claims: PodClaims::of(
                    spec_claims.as_deref(),
                    statuses.as_deref(),
                    extended.as_ref(),
                ),
            }
        }))
    }

    async fn resource_claim(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<ClaimInfo>, MetaError> {
        let Some(found) = self.find("resourceclaims", "ResourceClaim", namespace, name)? else {
            return Ok(None);
        };
        // serde's message may quote a value from the file: only the file and object are named.
        let claim: ResourceClaim = serde_json::from_value(found.object).map_err(|_| {
            MetaError::Decode(format!(
                "{}: ResourceClaim {namespace}/{name} is not a valid resource.k8s.io/v1 \
                 ResourceClaim",
                found.file.display()
            ))
        })?;
        Ok(Some(ClaimInfo::from(&claim)))
    }

    /// A folder has no claim status to keep: nothing is written.
    async fn write_claim_network_data(
        &self,
        _namespace: &str,
        _claim: &str,
        _entries: &[(ClaimDevice, NetworkData)],
    ) -> Result<(), MetaError> {
        Ok(())
    }

    async fn published_devices(
        &self,
        node: &str,
        driver: &str,
    ) -> Result<Vec<PublishedDevice>, MetaError> {
        let folder = self.load_dir("resourceslices")?;
        if let Some(e) = folder.unreadable.into_iter().next() {
            return Err(e);
        }
        let mut devices = Vec::new();
        for loaded in folder.objects {
            if loaded.object.get("kind").and_then(Value::as_str) != Some("ResourceSlice") {
                continue;
            }
            let slice: ResourceSlice = serde_json::from_value(loaded.object).map_err(|_| {
                MetaError::Decode(format!(
                    "{}: holds an invalid resource.k8s.io/v1 ResourceSlice",
                    loaded.file.display()
                ))
            })?;
            devices.extend(
                dra::published_on(&slice, node)
                    .into_iter()
                    .filter(|d| d.driver == driver),
            );
        }
        Ok(devices)
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
        // Read-edit-replace under the lock: a concurrent writer of another pod in the same file
        // would otherwise replace the file with a copy that lacks this update.
        let Some(_lock) = self.lock_pods()? else {
            return Ok(());
        };
        let Some(found) = self.find("pods", "Pod", namespace, name)? else {
            return Ok(());
        };
        // Rewrite the whole file, replacing only this pod's annotation.
        let mut objects = read_objects(&found.file)?;
        for obj in objects.iter_mut() {
            if !is_object(obj, "Pod", namespace, name) {
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
        let shown = found.file.display();
        let mode = fs::metadata(&found.file)
            .map_err(|e| MetaError::io(&shown, e))?
            .permissions()
            .mode();
        // The file keeps its mode, less any write permission for group and others.
        let opts = WriteOptions {
            mode: mode & 0o755,
            durable: false,
        };
        write_atomic(&found.file, text.as_bytes(), opts).map_err(|e| MetaError::io(&shown, e))
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
        let pod = block_on(src.pod("demo", "a", None)).unwrap().unwrap();
        assert_eq!(pod.uid.as_deref(), Some("u1"));
        assert_eq!(pod.annotations["k8s.v1.cni.cncf.io/networks"], "m1");
        assert!(block_on(src.pod("default", "b", None)).unwrap().is_some());
        assert!(block_on(src.pod("demo", "b", None)).unwrap().is_none());
        let nad = block_on(src.nad("demo", "m1")).unwrap().unwrap();
        assert_eq!(nad.config.as_deref(), Some("{\"type\":\"macvlan\"}"));
        block_on(src.write_network_status("demo", "a", "[{\"name\":\"x\"}]")).unwrap();
        let pod = block_on(src.pod("demo", "a", None)).unwrap().unwrap();
        assert_eq!(pod.annotations[NETWORK_STATUS], "[{\"name\":\"x\"}]");
        // The other pod in the same file survived the rewrite.
        assert!(block_on(src.pod("default", "b", None)).unwrap().is_some());
        // A vanished pod is fine.
        block_on(src.write_network_status("demo", "gone", "[]")).unwrap();
        // No temp file is left next to the pod file; only the lock remains.
        let mut names: Vec<_> = fs::read_dir(dir.path().join("pods"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, vec![LOCK_FILE.to_string(), "p.yaml".to_string()]);
    }

    #[test]
    fn no_pods_folder_means_no_pod_and_nothing_written() {
        let dir = tempfile::tempdir().unwrap();
        let src = LocalSource::new(dir.path());
        assert!(block_on(src.pod("demo", "a", None)).unwrap().is_none());
        block_on(src.write_network_status("demo", "a", "[]")).unwrap();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    fn pod_yaml(namespace: &str, name: &str) -> String {
        format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {namespace}\n")
    }

    #[test]
    fn concurrent_status_writes_to_one_file_all_land() {
        const PODS: usize = 12;
        const ROUNDS: usize = 5;
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("pods")).unwrap();
        let docs: Vec<String> = (0..PODS)
            .map(|i| pod_yaml("demo", &format!("p{i}")))
            .collect();
        fs::write(dir.path().join("pods/all.yaml"), docs.join("---\n")).unwrap();
        let start = std::sync::Barrier::new(PODS);
        std::thread::scope(|s| {
            for i in 0..PODS {
                let (root, start) = (dir.path(), &start);
                s.spawn(move || {
                    let src = LocalSource::new(root);
                    start.wait();
                    for round in 0..ROUNDS {
                        let status = format!("[{{\"name\":\"p{i}\",\"round\":{round}}}]");
                        block_on(src.write_network_status("demo", &format!("p{i}"), &status))
                            .unwrap();
                    }
                });
            }
        });
        let src = LocalSource::new(dir.path());
        for i in 0..PODS {
            let pod = block_on(src.pod("demo", &format!("p{i}"), None))
                .unwrap()
                .unwrap();
            let last = format!("[{{\"name\":\"p{i}\",\"round\":{}}}]", ROUNDS - 1);
            assert_eq!(pod.annotations.get(NETWORK_STATUS), Some(&last), "pod p{i}");
        }
        let leftovers: Vec<_> = fs::read_dir(dir.path().join("pods"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n != "all.yaml" && n != LOCK_FILE)
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn a_bad_pod_file_fails_only_lookups_it_could_answer_and_is_named() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("pods")).unwrap();
        fs::write(dir.path().join("pods/good.yaml"), pod_yaml("demo", "good")).unwrap();
        // A stray tab and a secret-looking value, neither of which may reach a message.
        let bad = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: lost\n  token: s3cr3t-T0KEN\n\t- [unclosed\n";
        fs::write(dir.path().join("pods/bad.yaml"), bad).unwrap();
        let src = LocalSource::new(dir.path());
        // The good file's pod is served, status writes included.
        assert!(block_on(src.pod("demo", "good", None)).unwrap().is_some());
        block_on(src.write_network_status("demo", "good", "[]")).unwrap();
        assert_eq!(
            block_on(src.pod("demo", "good", None))
                .unwrap()
                .unwrap()
                .annotations[NETWORK_STATUS],
            "[]"
        );
        // A pod that may be in the bad file: an error naming the file and the place.
        for e in [
            block_on(src.pod("demo", "lost", None)).unwrap_err(),
            block_on(src.write_network_status("demo", "lost", "[]")).unwrap_err(),
        ] {
            let cni = e.to_cni();
            assert_eq!(cni.code.code(), 6, "{cni}");
            assert!(cni.msg.contains("bad.yaml"), "{}", cni.msg);
            assert!(cni.msg.contains("line "), "{}", cni.msg);
            assert!(!cni.to_string().contains("s3cr3t"), "{cni}");
            assert!(!cni.to_string().contains("unclosed"), "{cni}");
        }
        // The bad file was not touched.
        assert_eq!(
            fs::read_to_string(dir.path().join("pods/bad.yaml")).unwrap(),
            bad
        );
    }

    #[test]
    fn a_bad_nad_file_next_to_a_good_one() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("nads")).unwrap();
        fs::write(
            dir.path().join("nads/good.yaml"),
            "kind: NetworkAttachmentDefinition\nmetadata:\n  name: m1\nspec:\n  config: '{}'\n",
        )
        .unwrap();
        fs::write(
            dir.path().join("nads/bad.yaml"),
            "kind: [\"password: hunter2\"\n",
        )
        .unwrap();
        let src = LocalSource::new(dir.path());
        assert!(block_on(src.nad("default", "m1")).unwrap().is_some());
        let e = block_on(src.nad("default", "m2")).unwrap_err().to_cni();
        assert!(e.msg.contains("bad.yaml"), "{}", e.msg);
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
}
