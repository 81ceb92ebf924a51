//! Running an external plugin binary, as libcni's invoke package does.
//!
//! The child gets exactly `extra_env` plus the six CNI_* variables (CNI_COMMAND set from the
//! request), so callers forward the whole non-CNI environment (PATH, TRACEPARENT, ...) by
//! passing it as `extra_env`. On a non-zero exit the child's error JSON on stdout becomes a
//! [`CniError`] with its code; with empty stdout, stderr is quoted in the message (code 999).
//! A child still running at the timeout is killed and the call fails with code 11 (try again
//! later), since a hung delegate is usually a busy node, not a bad config.
//!
//! A plugin never outlives the call that ran it:
//! - it runs in its own process group, and on timeout, or when the call's future is dropped, the
//!   whole group is killed (SIGKILL to the group), so a plugin's own children die with it;
//! - it gets PR_SET_PDEATHSIG(SIGKILL), so when the process that exec'd it dies (even by
//!   SIGKILL) the kernel kills the plugin. The kernel sends that signal when the *thread* that
//!   forked exits: exec_raw waits for the child on the calling task, and multinet's runtimes keep
//!   their threads for as long as a call runs. A plugin's own children are not covered by the
//!   death signal (the kernel clears it on fork): after a SIGKILL of multinet only a plugin
//!   that forked survives it, reparented to init. Such a child keeps the caller's container
//!   lock (`ExecRequest::keep_fd`), so the next call for that container waits for it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::env::{CNI_COMMAND, CniEnv, Command};
use crate::error::{CniError, Result};
use crate::result::NetworkResult;
use crate::version::CniVersion;

/// The default timeout for one delegate call.
pub const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(60);

/// Finds plugin `plugin_type` in the CNI_PATH directories. A type that is empty, `.`, `..` or
/// contains '/' is code 7, as is a type found in no directory.
pub fn find_plugin(plugin_type: &str, cni_path: &[PathBuf]) -> Result<PathBuf> {
    if plugin_type.is_empty()
        || plugin_type == "."
        || plugin_type == ".."
        || plugin_type.contains('/')
    {
        return Err(CniError::invalid_config(format!(
            "invalid plugin type {plugin_type:?}: a type is a file name in CNI_PATH"
        )));
    }
    for dir in cni_path {
        let candidate = dir.join(plugin_type);
        if std::fs::metadata(&candidate).is_ok_and(|m| m.is_file()) {
            return Ok(candidate);
        }
    }
    Err(CniError::invalid_config(format!(
        "failed to find plugin {plugin_type:?} in CNI_PATH [{}]",
        cni_path
            .iter()
            .map(|p| p.to_string_lossy())
            .collect::<Vec<_>>()
            .join(":")
    )))
}

/// What to run a plugin with.
#[derive(Debug, Clone)]
pub struct ExecRequest<'a> {
    pub command: Command,
    pub env: &'a CniEnv,
    pub extra_env: &'a [(String, String)],
    pub stdin: &'a [u8],
    pub timeout: Duration,
    /// A descriptor the plugin inherits and keeps for its whole life: the caller's lock on the
    /// container (`files::LockFile`), so that a later call for the same container waits for the
    /// plugins of a call that was killed instead of racing with them.
    pub keep_fd: Option<std::os::fd::RawFd>,
}

/// Runs the plugin and returns its stdout on success.
pub async fn exec_raw(path: &Path, req: &ExecRequest<'_>) -> Result<Vec<u8>> {
    let mut cmd = tokio::process::Command::new(path);
    cmd.env_clear()
        .envs(req.extra_env.iter().map(|(k, v)| (k, v)))
        .envs(req.env.to_vars())
        .env(CNI_COMMAND, req.command.as_str())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    die_with_caller(&mut cmd, req.keep_fd);
    let shown = path.display();
    let mut child = spawn_retrying_busy(&mut cmd)
        .await
        .map_err(|e| CniError::io(format!("running plugin {shown}: {e}")))?;
    // Armed until the plugin exits on its own: a timeout or a dropped call kills the group. The
    // kernel keeps a group's id reserved while any member lives, so even after the leader was
    // reaped the signal reaches only the plugin's own children.
    let mut group = child.id().map(GroupKiller::new);
    let stdin_pipe = child.stdin.take();
    let input = req.stdin;
    let feed = async move {
        if let Some(mut pipe) = stdin_pipe {
            // A plugin may exit without reading stdin (e.g. VERSION): a broken pipe is fine.
            let _ = pipe.write_all(input).await;
            let _ = pipe.shutdown().await;
        }
    };
    let run = async {
        let ((), output) = tokio::join!(feed, child.wait_with_output());
        output
    };
    let output = match tokio::time::timeout(req.timeout, run).await {
        Err(_) => {
            // Kills the plugin's children too (kill_on_drop only kills the plugin itself).
            drop(group.take());
            return Err(CniError::try_again(format!(
                "plugin {shown} did not finish {} within {:?} and was killed",
                req.command, req.timeout
            )));
        }
        Ok(Err(e)) => {
            return Err(CniError::io(format!("waiting for plugin {shown}: {e}")));
        }
        Ok(Ok(output)) => output,
    };
    // The plugin exited and closed its output: what it left running is its own business.
    if let Some(group) = group.as_mut() {
        group.disarm();
    }
    if output.status.success() {
        return Ok(output.stdout);
    }
    Err(failure_error(&shown.to_string(), &output))
}

/// Puts the child in its own process group and asks the kernel to SIGKILL it when its parent
/// dies. The classic race: the parent may die between fork and prctl, in which case the signal
/// never comes; checking getppid() after prctl catches that and the child gives up at once.
fn die_with_caller(cmd: &mut tokio::process::Command, keep_fd: Option<std::os::fd::RawFd>) {
    cmd.process_group(0);
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec and calls only async-signal-safe
    // functions (prctl, getppid, fcntl); it allocates nothing (the error is a raw OS error).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            if u32::try_from(libc::getppid()).ok() != Some(parent) {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            // Cleared in the child only: other plugins started meanwhile never get it.
            if let Some(fd) = keep_fd
                && libc::fcntl(fd, libc::F_SETFD, 0) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Kills a plugin's whole process group when dropped, unless disarmed after the plugin exited.
struct GroupKiller {
    pgid: Option<libc::pid_t>,
}

impl GroupKiller {
    /// The plugin is its group's leader, so the group id is its pid.
    fn new(pid: u32) -> GroupKiller {
        GroupKiller {
            pgid: libc::pid_t::try_from(pid).ok(),
        }
    }

    fn disarm(&mut self) {
        self.pgid = None;
    }
}

impl Drop for GroupKiller {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            // SAFETY: killpg has no memory preconditions; a group that is already gone is ESRCH,
            // which is fine to ignore.
            unsafe {
                libc::killpg(pgid, libc::SIGKILL);
            }
        }
    }
}

/// Starts the plugin, retrying while the kernel says its file is busy (ETXTBSY): a binary being
/// copied into place during an upgrade, or a file another thread's fork still holds open for
/// writing. Both pass within milliseconds; a second later the error is real.
async fn spawn_retrying_busy(
    cmd: &mut tokio::process::Command,
) -> std::io::Result<tokio::process::Child> {
    const ETXTBSY: i32 = 26;
    let mut delay = Duration::from_millis(5);
    loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(ETXTBSY) && delay < Duration::from_secs(1) => {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            other => return other,
        }
    }
}

fn failure_error(shown: &str, output: &std::process::Output) -> CniError {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let status = output.status;
    if stdout.trim().is_empty() {
        let msg = if stderr.trim().is_empty() {
            format!("plugin {shown} failed ({status}) with no error message")
        } else {
            format!("plugin {shown} failed ({status}): {}", stderr.trim())
        };
        return CniError::internal(msg);
    }
    match serde_json::from_str::<CniError>(&stdout) {
        Ok(e) => e,
        Err(parse) => CniError::internal(format!(
            "plugin {shown} failed ({status}) and its error could not be parsed ({parse}): {}",
            stdout.trim()
        )),
    }
}

/// Runs the plugin; ADD returns its parsed result (read as the stdin config's version when it
/// has no cniVersion), every other verb returns None.
pub async fn exec_plugin(path: &Path, req: &ExecRequest<'_>) -> Result<Option<NetworkResult>> {
    let out = exec_raw(path, req).await?;
    if req.command != Command::Add {
        return Ok(None);
    }
    let default_version = serde_json::from_slice::<serde_json::Value>(req.stdin)
        .ok()
        .and_then(|v| v.get("cniVersion")?.as_str()?.parse().ok())
        .unwrap_or(CniVersion::LATEST);
    NetworkResult::from_slice(&out, default_version)
        .map(Some)
        .map_err(|e| e.context(format!("result of plugin {}", path.display())))
}
