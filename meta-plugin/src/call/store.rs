//! The attachment store: one crash-safe record per container in `cniDir`, written before any
//! delegate runs and updated after each one, so DEL needs neither the API server, the NAD, the pod
//! nor the netns.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use multinet_cni::files;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::call::attachment::{Attachment, AttachmentState};
use crate::error::MetaError;

const RECORD_FORMAT: u32 = 1;
/// The suffix of a container's lock file, beside its record.
const LOCK: &str = ".lock";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
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
    /// Where the ADD looked for plugins (binDir, then CNI_PATH): hot-plug looks there too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cni_path: Vec<std::path::PathBuf>,
    pub attachments: Vec<Attachment>,
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
            cni_path: Vec::new(),
            attachments: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AttachmentStore {
    dir: PathBuf,
}

/// Largest record multinet reads back: a pod's plan with its results is kilobytes; the bound
/// keeps a damaged file from taking a root process's memory.
const MAX_RECORD_BYTES: u64 = 16 << 20;
/// Suffix of a record's journal: one line per attachment added since the plan was written.
const JOURNAL: &str = ".journal";
/// Where records that could not be read are kept for inspection.
const SET_ASIDE: &str = "corrupt";

/// One line of a record's journal: attachment `index` was added with `result`.
#[derive(Debug, Serialize, Deserialize)]
struct JournalLine {
    index: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    result: Option<Value>,
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

    /// The record's file: the container ID, hashed when it would not fit in a file name (the
    /// record names its container, so a load always knows whose record it read).
    pub fn path_for(&self, container_id: &str) -> PathBuf {
        let reserve = ".json".len() + JOURNAL.len();
        self.dir
            .join(format!("{}.json", files::name_for(container_id, reserve)))
    }

    fn journal_for(&self, container_id: &str) -> PathBuf {
        let mut path = self.path_for(container_id).into_os_string();
        path.push(JOURNAL);
        PathBuf::from(path)
    }

    fn store_err(path: &Path) -> impl Fn(std::io::Error) -> MetaError + '_ {
        move |e| MetaError::store(path, e)
    }

    /// Compact JSON: pretty-printing multiplies a deeply nested config (a pod's cni-args, say)
    /// many times over. A record larger than multinet reads back is refused before it is
    /// written, so no ADD leaves a record its DEL could not read.
    fn encode(&self, record: &AttachmentRecord) -> Result<Vec<u8>, MetaError> {
        let bytes = serde_json::to_vec(record)
            .map_err(|e| MetaError::store(self.path_for(&record.container_id), e))?;
        if bytes.len() as u64 > MAX_RECORD_BYTES {
            return Err(MetaError::InvalidConfig(format!(
                "the attachment record would be {} bytes, more than the {MAX_RECORD_BYTES} a \
                 record may hold: the pod's networks and their configs are too large",
                bytes.len()
            )));
        }
        Ok(bytes)
    }

    /// Writes a new container's plan, durably, failing when the container already has a record:
    /// a second ADD without DEL must not touch the first one's attachments (spec).
    pub fn create(&self, record: &AttachmentRecord) -> Result<(), MetaError> {
        let path = self.path_for(&record.container_id);
        let io = Self::store_err(&path);
        files::ensure_dir(&self.dir, files::PRIVATE_DIR).map_err(&io)?;
        let bytes = self.encode(record)?;
        // Never a torn record, never a second one over the first.
        match files::create_exclusive(&path, &bytes, files::WriteOptions::PRIVATE_DURABLE) {
            Ok(true) => {
                let _ = fs::remove_file(self.journal_for(&record.container_id));
                Ok(())
            }
            Ok(false) => Err(MetaError::Env(format!(
                "CNI_CONTAINERID {:?} already has attachments (record {}): ADD twice without \
                 DEL is an error; nothing was changed",
                record.container_id,
                path.display()
            ))),
            Err(e) => Err(io(e)),
        }
    }

    /// Rewrites the record atomically: temp file, fsync, rename, fsync of the directory. A crash
    /// leaves either the old record or the new one, never a torn file. The journal is folded in.
    pub fn save(&self, record: &AttachmentRecord) -> Result<(), MetaError> {
        self.write(record, files::WriteOptions::PRIVATE_DURABLE)
    }

    /// Atomic like `save` (never a torn file) but not flushed to disk: for updates whose loss in
    /// a power cut only leaves an older, still valid record.
    pub fn save_quick(&self, record: &AttachmentRecord) -> Result<(), MetaError> {
        self.write(record, files::WriteOptions::PRIVATE_QUICK)
    }

    fn write(&self, record: &AttachmentRecord, opts: files::WriteOptions) -> Result<(), MetaError> {
        let path = self.path_for(&record.container_id);
        let io = Self::store_err(&path);
        files::ensure_dir(&self.dir, files::PRIVATE_DIR).map_err(&io)?;
        files::write_atomic(&path, &self.encode(record)?, opts).map_err(&io)?;
        let _ = fs::remove_file(self.journal_for(&record.container_id));
        Ok(())
    }

    /// Notes that attachment `index` was added, with its result: one appended line, so an ADD
    /// of n networks writes O(n) bytes in all. Not flushed: a lost line leaves the entry Planned,
    /// which DEL handles the same way.
    pub fn journal_added(&self, record: &AttachmentRecord, index: usize) -> Result<(), MetaError> {
        let path = self.journal_for(&record.container_id);
        let io = Self::store_err(&path);
        let line = JournalLine {
            index,
            result: record.attachments.get(index).and_then(|a| a.result.clone()),
        };
        let mut bytes = serde_json::to_vec(&line).map_err(|e| io(std::io::Error::other(e)))?;
        bytes.push(b'\n');
        let mut f = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(files::PRIVATE_FILE)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(&io)?;
        let meta = f.metadata().map_err(&io)?;
        files::check_trusted(&path, &meta).map_err(|e| io(e.into()))?;
        // One write(2) of a whole line: a crash leaves at worst a torn last line, skipped on load.
        f.write_all(&bytes).map_err(&io)
    }

    /// Loads a container's record with its journal. A missing record is `None`; a corrupt one, or
    /// one that another uid could have written, is an error naming the file, never a silent
    /// success and never executed.
    pub fn load(&self, container_id: &str) -> Result<Option<AttachmentRecord>, MetaError> {
        let path = self.path_for(container_id);
        let corrupt = |msg: String| MetaError::CorruptRecord {
            path: path.clone(),
            msg,
        };
        // Anything but "no record" that keeps the record from being read (not ours, a symlink,
        // too large, unreadable) makes it unusable: DEL sets it aside instead of failing forever.
        let bytes = match files::read_trusted(&path, MAX_RECORD_BYTES) {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(None),
            Err(e) => return Err(corrupt(e.to_string())),
        };
        // serde's message says where (line, column) and what was expected, never the text itself.
        let mut record: AttachmentRecord =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if record.format != RECORD_FORMAT || record.container_id != container_id {
            return Err(corrupt(format!(
                "format {} for another container, expected format {RECORD_FORMAT} for {container_id:?}",
                record.format
            )));
        }
        let journal = self.journal_for(container_id);
        match files::read_trusted(&journal, MAX_RECORD_BYTES) {
            Ok(Some(lines)) => {
                for line in lines.split(|b| *b == b'\n') {
                    // A torn last line is an update that never finished: the entry stays Planned.
                    let Ok(line) = serde_json::from_slice::<JournalLine>(line) else {
                        continue;
                    };
                    if let Some(entry) = record.attachments.get_mut(line.index) {
                        entry.state = AttachmentState::Added;
                        entry.result = line.result;
                    }
                }
            }
            Ok(None) => {}
            Err(e) => return Err(corrupt(format!("journal {}: {e}", journal.display()))),
        }
        Ok(Some(record))
    }

    pub fn remove(&self, container_id: &str) -> Result<(), MetaError> {
        let _ = fs::remove_file(self.journal_for(container_id));
        let path = self.path_for(container_id);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(MetaError::store(path, e)),
        }
    }

    /// Moves a record that could not be used (and its journal) into `corrupt/`, kept for
    /// inspection under a name that says when; the container then has no record. Returns where
    /// it went.
    pub fn set_aside(&self, container_id: &str) -> Result<PathBuf, MetaError> {
        let aside = self.dir.join(SET_ASIDE);
        let path = self.path_for(container_id);
        let io = Self::store_err(&aside);
        files::ensure_dir(&aside, files::PRIVATE_DIR).map_err(&io)?;
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let to = aside.join(files::name_for(&format!("{name}.{stamp}"), JOURNAL.len()));
        match fs::rename(&path, &to) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        let mut journal_to = to.clone().into_os_string();
        journal_to.push(JOURNAL);
        let _ = fs::rename(self.journal_for(container_id), journal_to);
        Ok(to)
    }

    /// Container IDs that have a readable record, for GC (hashed names are read back through the
    /// record itself).
    pub fn container_ids(&self) -> Result<Vec<String>, MetaError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(MetaError::store(&self.dir, e));
            }
        };
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Id {
            container_id: String,
        }
        let mut ids: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                if name.starts_with('.') {
                    return None;
                }
                let stem = name.strip_suffix(".json")?;
                if stem.len() + ".json".len() + JOURNAL.len() < files::NAME_MAX {
                    return Some(stem.to_string());
                }
                let bytes = files::read_trusted(&e.path(), MAX_RECORD_BYTES).ok()??;
                serde_json::from_slice::<Id>(&bytes)
                    .ok()
                    .map(|r| r.container_id)
            })
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// The lock file of a container's calls: its record's name with `.lock` for `.json`.
    fn lock_path_for(&self, container_id: &str) -> PathBuf {
        self.path_for(container_id).with_extension(&LOCK[1..])
    }

    /// Takes the container's lock, waiting at most `wait`; `Ok(None)` when it is still held
    /// then. Every plugin the call execs inherits the lock (`CallContext::container_lock`), so
    /// after a call was killed the next one (the runtime's DEL) waits until that call's plugins
    /// are gone too, instead of deleting an interface one of them is still creating.
    pub async fn lock(
        &self,
        container_id: &str,
        wait: Duration,
    ) -> Result<Option<files::LockFile>, MetaError> {
        let path = self.lock_path_for(container_id);
        let io = Self::store_err(&path);
        files::ensure_dir(&self.dir, files::PRIVATE_DIR).map_err(&io)?;
        let deadline = Instant::now() + wait;
        loop {
            if let Some(lock) = files::LockFile::try_acquire(&path).map_err(&io)? {
                return Ok(Some(lock));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Removes the lock files that calls killed while holding them left behind, once nothing
    /// holds them any more and the container has no record (GC).
    pub fn remove_stale_locks(&self) -> usize {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(LOCK)) else {
                continue;
            };
            if self.dir.join(format!("{stem}.json")).exists() {
                continue;
            }
            // Taken and dropped: the file goes with the lock.
            if let Ok(Some(lock)) = files::LockFile::try_acquire(&entry.path()) {
                drop(lock);
                removed += 1;
            }
        }
        removed
    }

    /// Removes temp files of writers that died mid-write, and any older than a minute (GC).
    pub fn remove_stale_temps(&self) -> usize {
        files::remove_stale_temps(&self.dir, std::time::Duration::from_secs(60))
    }

    /// Removes temp files whose writer is gone (a DEL after a killed ADD): a live writer's stay.
    pub fn remove_dead_writers_temps(&self) -> usize {
        files::remove_stale_temps(&self.dir, std::time::Duration::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record() -> AttachmentRecord {
        let mut r = AttachmentRecord::new("c1", Some("/run/netns/p1".into()), "1.0.0");
        r.attachments.push(Attachment::planned(
            "default/macvlan-a",
            "net1",
            json!({"cniVersion":"1.0.0","name":"macvlan-a","type":"macvlan"}),
        ));
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
        r.attachments[0].device_info_file = Some(crate::call::attachment::DeviceInfoFile::at(
            "/var/run/k8s.cni.cncf.io/devinfo/cni/macvlan-a-c1_net1",
        ));
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

    /// A record as multinet wrote it before the attachment was one type (format 1, every key
    /// it had) still loads: a DEL after an upgrade finds what the ADD created.
    #[test]
    fn a_record_written_by_earlier_versions_loads() {
        let dir = tempfile::tempdir().unwrap();
        let store = AttachmentStore::new(dir.path());
        fs::create_dir_all(store.dir()).unwrap();
        let text = r#"{"format":1,"containerId":"c1","netns":"/run/netns/p1","cniVersion":"1.0.0","pod":{"namespace":"team","name":"p","uid":"u1"},"cniArgs":[["K8S_POD_NAMESPACE","team"],["K8S_POD_NAME","p"]],"attachments":[{"network":"cluster","ifname":"eth0","isDefault":true,"conf":{"cniVersion":"1.0.0","name":"cluster","type":"bridge"},"state":"added","result":{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","mac":"02:00:00:00:00:01","sandbox":"/run/netns/p1"}],"ips":[{"address":"10.0.0.5/24","interface":0}]}},{"network":"team/vf","ifname":"net1","isDefault":false,"conf":{"cniVersion":"1.0.0","name":"vf","type":"sriov","deviceID":"0000:3b:02.1"},"state":"deleteFailed","deviceInfoFile":"/var/run/k8s.cni.cncf.io/devinfo/cni/vf-c1_net1"},{"network":"team/b","ifname":"net2","conf":{"cniVersion":"1.0.0","name":"b","type":"macvlan"},"state":"planned"}]}"#;
        fs::write(store.path_for("c1"), text).unwrap();
        let r = store.load("c1").unwrap().unwrap();
        assert_eq!(r.container_id, "c1");
        assert_eq!(r.netns.as_deref(), Some("/run/netns/p1"));
        assert_eq!(r.pod.as_ref().unwrap().uid.as_deref(), Some("u1"));
        assert_eq!(r.cni_args.len(), 2);
        let [cluster, vf, planned] = &r.attachments[..] else {
            panic!("{r:?}")
        };
        assert!(cluster.is_default);
        assert_eq!(cluster.state, AttachmentState::Added);
        assert_eq!(
            cluster.result.as_ref().unwrap()["ips"][0]["address"],
            "10.0.0.5/24"
        );
        assert_eq!(vf.state, AttachmentState::DeleteFailed);
        assert_eq!(vf.conf["deviceID"], "0000:3b:02.1");
        assert_eq!(
            vf.device_info_path(),
            Some(std::path::Path::new(
                "/var/run/k8s.cni.cncf.io/devinfo/cni/vf-c1_net1"
            ))
        );
        assert!(!planned.is_default);
        assert_eq!(planned.state, AttachmentState::Planned);
        assert_eq!(planned.result, None);
        // Written back, it is the same record.
        let back: Value = serde_json::to_value(&r).unwrap();
        let mut orig: Value = serde_json::from_str(text).unwrap();
        orig["attachments"][2]["isDefault"] = json!(false);
        assert_eq!(back, orig);
    }
}
