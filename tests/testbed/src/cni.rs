//! Calling a CNI plugin as a runtime does: `CNI_*` variables in the environment, the config on
//! stdin, the result or error on stdout.
//!
//! ```no_run
//! use multinet_testbed::{CniCall, TestNetns};
//!
//! let node = TestNetns::new();
//! let pod = TestNetns::new();
//! let out = CniCall::new("/usr/lib/cni/macvlan", "ADD")
//!     .in_netns(&node)
//!     .container_id("c1")
//!     .netns(pod.path())
//!     .ifname("eth0")
//!     .path("/usr/lib/cni")
//!     .stdin(r#"{"cniVersion":"1.0.0","name":"n","type":"macvlan","master":"up0"}"#)
//!     .run();
//! assert_eq!(out.code(), 0, "{}", out.stderr);
//! let result = out.json();
//! ```

use std::ffi::{OsStr, OsString};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use crate::TestNetns;

/// One call of a plugin binary. Only the variables set are passed: an unset `CNI_NETNS` is
/// absent from the child's environment, not empty.
#[derive(Debug, Clone)]
pub struct CniCall {
    program: PathBuf,
    /// `ip netns exec` this namespace first, as a runtime on a node would.
    node: Option<String>,
    /// Start from an empty environment instead of this process's.
    clear: bool,
    /// Variables to set (`Some`) or remove (`None`), in the order given.
    env: Vec<(OsString, Option<OsString>)>,
    stdin: Vec<u8>,
}

impl CniCall {
    /// A call of `program` with `CNI_COMMAND=command` and nothing else set yet.
    pub fn new(program: impl AsRef<Path>, command: &str) -> Self {
        CniCall {
            program: program.as_ref().to_path_buf(),
            node: None,
            clear: false,
            env: Vec::new(),
            stdin: Vec::new(),
        }
        .env("CNI_COMMAND", command)
    }

    /// Runs the plugin inside `node` (`ip netns exec`), as a runtime on that node would.
    /// The same call made through another program (a wrapper that sets a umask, say).
    pub fn program(mut self, program: impl AsRef<Path>) -> Self {
        self.program = program.as_ref().to_path_buf();
        self
    }

    pub fn in_netns(mut self, node: &TestNetns) -> Self {
        self.node = Some(node.name().to_owned());
        self
    }

    /// Starts the plugin with only the variables set here, none of this process's.
    pub fn env_clear(mut self) -> Self {
        self.clear = true;
        self
    }

    /// `CNI_CONTAINERID`.
    pub fn container_id(self, id: impl AsRef<OsStr>) -> Self {
        self.env("CNI_CONTAINERID", id)
    }

    /// `CNI_NETNS`.
    pub fn netns(self, netns: impl AsRef<OsStr>) -> Self {
        self.env("CNI_NETNS", netns)
    }

    /// `CNI_IFNAME`.
    pub fn ifname(self, ifname: impl AsRef<OsStr>) -> Self {
        self.env("CNI_IFNAME", ifname)
    }

    /// `CNI_ARGS`.
    pub fn args(self, args: impl AsRef<OsStr>) -> Self {
        self.env("CNI_ARGS", args)
    }

    /// `CNI_PATH`.
    pub fn path(self, path: impl AsRef<OsStr>) -> Self {
        self.env("CNI_PATH", path)
    }

    /// Sets any other variable (a later setting of the same name wins).
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    /// Removes a variable this process would otherwise pass on.
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.env.push((key.as_ref().to_owned(), None));
        self
    }

    /// The bytes written to the plugin's stdin (the network config).
    pub fn stdin(mut self, stdin: impl Into<Vec<u8>>) -> Self {
        self.stdin = stdin.into();
        self
    }

    /// The config on stdin, serialised.
    pub fn stdin_json(self, conf: &serde_json::Value) -> Self {
        self.stdin(conf.to_string())
    }

    /// The variables this call sets, as an in-process dispatch takes them (later settings of a
    /// name replace earlier ones; removals are left out).
    pub fn vars(&self) -> Vec<(String, String)> {
        let mut vars: Vec<(String, String)> = Vec::new();
        for (key, value) in &self.env {
            let key = key.to_string_lossy().into_owned();
            vars.retain(|(k, _)| *k != key);
            if let Some(value) = value {
                vars.push((key, value.to_string_lossy().into_owned()));
            }
        }
        vars
    }

    /// The stdin bytes.
    pub fn stdin_bytes(&self) -> &[u8] {
        &self.stdin
    }

    /// Starts the plugin and writes its stdin; stdout and stderr are piped. Panics when it
    /// cannot start.
    pub fn spawn(&self) -> Child {
        let mut cmd = match &self.node {
            Some(node) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", node]).arg(&self.program);
                cmd
            }
            None => Command::new(&self.program),
        };
        if self.clear {
            cmd.env_clear();
        } else {
            // `cargo run`/`cargo test` set a library path a runtime would not.
            cmd.env_remove("LD_LIBRARY_PATH");
        }
        for (key, value) in &self.env {
            match value {
                Some(value) => cmd.env(key, value),
                None => cmd.env_remove(key),
            };
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = spawn_retrying_busy(&mut cmd)
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.program.display()));
        if let Some(mut stdin) = child.stdin.take() {
            // A plugin may exit without reading stdin (VERSION, early errors): its answer
            // says what happened, a broken pipe does not.
            match stdin.write_all(&self.stdin) {
                Err(e) if e.kind() != ErrorKind::BrokenPipe => {
                    panic!("cannot write {}'s stdin: {e}", self.program.display())
                }
                _ => {}
            }
        }
        child
    }

    /// Runs the plugin to its end.
    pub fn run(&self) -> CniOutput {
        CniOutput::wait(self.spawn())
    }
}

/// Spawns `cmd`, retrying while its program is "busy": a script plugin a test has just
/// written stays open for writing in any child another thread forks meanwhile, until that
/// child execs.
fn spawn_retrying_busy(cmd: &mut Command) -> std::io::Result<Child> {
    let mut tries = 0;
    loop {
        match cmd.spawn() {
            Err(e) if e.kind() == ErrorKind::ExecutableFileBusy && tries < 100 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// What a plugin printed and how it exited.
#[derive(Debug, Clone)]
pub struct CniOutput {
    pub stdout: String,
    pub stderr: String,
    pub status: ExitStatus,
}

impl CniOutput {
    /// Waits for a child started by [`CniCall::spawn`].
    pub fn wait(child: Child) -> CniOutput {
        let out = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("cannot wait for a plugin: {e}"));
        CniOutput {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            status: out.status,
        }
    }

    /// The exit code; -1 when a signal ended the plugin.
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }

    /// Whether the plugin exited 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Stdout parsed: null when empty, a panic when it is not JSON (a plugin prints only its
    /// result or error on stdout, and nothing at all when it has neither).
    pub fn json(&self) -> serde_json::Value {
        if self.stdout.is_empty() {
            return serde_json::Value::Null;
        }
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vars_keep_the_last_setting_and_drop_removals() {
        let call = CniCall::new("/bin/true", "ADD")
            .container_id("c1")
            .ifname("eth0")
            .env("X", "1")
            .container_id("c2")
            .env_remove("X");
        assert_eq!(
            call.vars(),
            [
                ("CNI_COMMAND".to_owned(), "ADD".to_owned()),
                ("CNI_IFNAME".to_owned(), "eth0".to_owned()),
                ("CNI_CONTAINERID".to_owned(), "c2".to_owned()),
            ]
        );
    }
}
