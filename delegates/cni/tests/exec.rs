//! exec: a tiny shell plugin written by each test, and the real reference host-local.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use multinet_cni::{CniEnv, CniVersion, Command, ExecRequest, exec_plugin, exec_raw, find_plugin};
use multinet_testbed::reference_plugin;
use serde_json::json;

fn write_plugin(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn env(cmd: &str, path: &Path) -> CniEnv {
    CniEnv::from_vars([
        ("CNI_COMMAND".to_string(), cmd.to_string()),
        ("CNI_CONTAINERID".to_string(), "ctr-1".to_string()),
        ("CNI_NETNS".to_string(), "/var/run/netns/ctr-1".to_string()),
        ("CNI_IFNAME".to_string(), "net1".to_string()),
        (
            "CNI_ARGS".to_string(),
            "IgnoreUnknown=1;K8S_POD_NAME=p".to_string(),
        ),
        ("CNI_PATH".to_string(), path.display().to_string()),
    ])
    .unwrap()
}

fn extra() -> Vec<(String, String)> {
    vec![
        ("PATH".into(), "/usr/bin:/bin".into()),
        ("TRACEPARENT".into(), "00-abc-def-01".into()),
    ]
}

const STDIN: &[u8] = br#"{"cniVersion":"0.4.0","name":"n","type":"fake"}"#;

fn req<'a>(
    command: Command,
    env: &'a CniEnv,
    extra: &'a [(String, String)],
    stdin: &'a [u8],
) -> ExecRequest<'a> {
    ExecRequest {
        command,
        env,
        extra_env: extra,
        stdin,
        timeout: Duration::from_secs(10),
        keep_fd: None,
    }
}

#[tokio::test]
async fn add_passes_env_and_stdin_and_parses_result() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().display().to_string();
    let plugin = write_plugin(
        dir.path(),
        "fake",
        &format!(
            r#"env > {out}/env
cat > {out}/stdin
echo '{{"ips":[{{"version":"4","address":"10.2.0.9/24"}}],"dns":{{}}}}'"#
        ),
    );
    let e = env("DEL", dir.path());
    let x = extra();
    // CNI_COMMAND comes from the request, not from the env it was built from.
    let r = exec_plugin(&plugin, &req(Command::Add, &e, &x, STDIN))
        .await
        .unwrap()
        .unwrap();
    // No cniVersion in the output: read in the stdin config's version.
    assert_eq!(r.cni_version, CniVersion::V0_4_0);
    assert_eq!(r.ips[0].address.to_string(), "10.2.0.9/24");
    let seen_env = std::fs::read_to_string(dir.path().join("env")).unwrap();
    for line in [
        "CNI_COMMAND=ADD",
        "CNI_CONTAINERID=ctr-1",
        "CNI_NETNS=/var/run/netns/ctr-1",
        "CNI_IFNAME=net1",
        "CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAME=p",
        "TRACEPARENT=00-abc-def-01",
    ] {
        assert!(
            seen_env.lines().any(|l| l == line),
            "{line} not in {seen_env}"
        );
    }
    assert_eq!(std::fs::read(dir.path().join("stdin")).unwrap(), STDIN);
}

#[tokio::test]
async fn non_add_returns_none() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = write_plugin(dir.path(), "fake", "cat >/dev/null; exit 0");
    let e = env("ADD", dir.path());
    let x = extra();
    for cmd in [Command::Del, Command::Check, Command::Status, Command::Gc] {
        assert_eq!(
            exec_plugin(&plugin, &req(cmd, &e, &x, STDIN))
                .await
                .unwrap(),
            None
        );
    }
}

#[tokio::test]
async fn error_json_becomes_cni_error_with_its_code() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = write_plugin(
        dir.path(),
        "fake",
        r#"echo '{"code":11,"msg":"range busy","details":"net1"}'; echo noise >&2; exit 1"#,
    );
    let e = env("ADD", dir.path());
    let x = extra();
    let err = exec_plugin(&plugin, &req(Command::Add, &e, &x, STDIN))
        .await
        .unwrap_err();
    assert_eq!(err.code.code(), 11);
    assert_eq!(err.msg, "range busy");
    assert_eq!(err.details, "net1");
}

#[tokio::test]
async fn empty_stdout_uses_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = write_plugin(dir.path(), "fake", "echo 'kaboom happened' >&2; exit 3");
    let e = env("ADD", dir.path());
    let x = extra();
    let err = exec_raw(&plugin, &req(Command::Add, &e, &x, STDIN))
        .await
        .unwrap_err();
    assert_eq!(err.code.code(), 999);
    assert!(err.msg.contains("kaboom happened"), "{}", err.msg);
    let silent = write_plugin(dir.path(), "silent", "exit 2");
    let err = exec_raw(&silent, &req(Command::Add, &e, &x, STDIN))
        .await
        .unwrap_err();
    assert!(err.msg.contains("no error message"), "{}", err.msg);
}

#[tokio::test]
async fn garbage_stdout_on_failure_and_bad_result_on_success() {
    let dir = tempfile::tempdir().unwrap();
    let e = env("ADD", dir.path());
    let x = extra();
    let garbage = write_plugin(dir.path(), "garbage", "echo 'not json'; exit 1");
    let err = exec_raw(&garbage, &req(Command::Add, &e, &x, STDIN))
        .await
        .unwrap_err();
    assert_eq!(err.code.code(), 999);
    assert!(err.msg.contains("not json"));
    let badresult = write_plugin(dir.path(), "badresult", "echo '{\"ips\":5}'");
    let err = exec_plugin(&badresult, &req(Command::Add, &e, &x, STDIN))
        .await
        .unwrap_err();
    assert_eq!(err.code.code(), 6);
    let empty = write_plugin(dir.path(), "empty", "exit 0");
    let err = exec_plugin(&empty, &req(Command::Add, &e, &x, STDIN))
        .await
        .unwrap_err();
    assert_eq!(err.code.code(), 6);
}

#[tokio::test]
async fn timeout_kills_and_is_code_11() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let plugin = write_plugin(
        dir.path(),
        "slow",
        &format!("echo $$ > {}; exec sleep 30", pidfile.display()),
    );
    let e = env("ADD", dir.path());
    let x = extra();
    let mut r = req(Command::Add, &e, &x, STDIN);
    r.timeout = Duration::from_millis(500);
    let start = Instant::now();
    let err = exec_raw(&plugin, &r).await.unwrap_err();
    assert_eq!(err.code.code(), 11);
    assert!(start.elapsed() < Duration::from_secs(5));
    // The child is gone (killed, then reaped by tokio's orphan reaper).
    let pid = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false);
        if !alive {
            break;
        }
        assert!(Instant::now() < deadline, "plugin {pid} still running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn find_plugin_rules() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    std::fs::create_dir(a.path().join("isdir")).unwrap();
    let p = write_plugin(b.path(), "isdir", "exit 0");
    let path = vec![a.path().to_path_buf(), b.path().to_path_buf()];
    assert_eq!(find_plugin("isdir", &path).unwrap(), p);
    for bad in ["", ".", "..", "a/b", "/bin/sh", "../x"] {
        let e = find_plugin(bad, &path).unwrap_err();
        assert_eq!(e.code.code(), 7, "{bad:?}");
    }
    let e = find_plugin("nosuch", &path).unwrap_err();
    assert_eq!(e.code.code(), 7);
    assert!(e.msg.contains("nosuch"));
    assert_eq!(find_plugin("x", &[]).unwrap_err().code.code(), 7);
}

#[tokio::test]
async fn real_host_local_add_del_version_and_error() {
    let Some(_) = reference_plugin("host-local") else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let cni_path = vec![PathBuf::from("/usr/lib/cni")];
    let plugin = find_plugin("host-local", &cni_path).unwrap();
    let e = env("ADD", Path::new("/usr/lib/cni"));
    let x = extra();
    let conf = serde_json::to_vec(&json!({
        "cniVersion": "0.3.1", "name": "execnet", "type": "host-local",
        "ipam": {"type": "host-local", "subnet": "10.77.0.0/24", "dataDir": data.path()}
    }))
    .unwrap();
    let r = exec_plugin(&plugin, &req(Command::Add, &e, &x, &conf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.cni_version, CniVersion::V0_3_1);
    assert_eq!(r.ips[0].address.to_string(), "10.77.0.2/24");
    assert_eq!(r.ips[0].gateway.unwrap().to_string(), "10.77.0.1");
    assert!(data.path().join("execnet/10.77.0.2").exists());

    assert_eq!(
        exec_plugin(&plugin, &req(Command::Del, &e, &x, &conf))
            .await
            .unwrap(),
        None
    );
    assert!(!data.path().join("execnet/10.77.0.2").exists());

    let version = exec_raw(&plugin, &req(Command::Version, &e, &x, &conf))
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&version).unwrap();
    assert!(
        v["supportedVersions"]
            .as_array()
            .unwrap()
            .contains(&json!("0.3.1"))
    );

    // Its own error JSON comes back with its code: a /31 subnet is refused.
    let bad = serde_json::to_vec(&json!({
        "cniVersion": "0.3.1", "name": "execnet", "type": "host-local",
        "ipam": {"type": "host-local", "subnet": "10.77.0.0/31", "dataDir": data.path()}
    }))
    .unwrap();
    let err = exec_plugin(&plugin, &req(Command::Add, &e, &x, &bad))
        .await
        .unwrap_err();
    // The reference reports this as code 999; the message is its own, not our wrapper's.
    assert_eq!(err.code.code(), 999, "{err}");
    assert!(err.msg.starts_with("invalid range set 0"), "{err}");
    assert!(err.msg.contains("10.77.0.0/31"), "{err}");
}

#[tokio::test]
async fn real_static_add_in_every_version() {
    let Some(plugin) = reference_plugin("static") else {
        return;
    };
    let e = env("ADD", Path::new("/usr/lib/cni"));
    let x = extra();
    for v in ["0.3.0", "0.3.1", "0.4.0", "1.0.0"] {
        let conf = serde_json::to_vec(&json!({
            "cniVersion": v, "name": "s", "type": "static",
            "ipam": {"type": "static", "addresses": [{"address": "10.10.0.1/24", "gateway": "10.10.0.254"}],
                     "routes": [{"dst": "0.0.0.0/0"}], "dns": {"nameservers": ["8.8.8.8"]}}
        }))
        .unwrap();
        let r = exec_plugin(&plugin, &req(Command::Add, &e, &x, &conf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.cni_version.as_str(), v);
        assert_eq!(r.ips[0].address.to_string(), "10.10.0.1/24");
        assert_eq!(r.routes[0].dst.to_string(), "0.0.0.0/0");
        assert_eq!(r.dns.nameservers, vec!["8.8.8.8"]);
    }
}

/// A plugin whose file is still open for writing (being copied into place, or held by a fork of
/// another thread) cannot be executed yet (ETXTBSY): exec waits for it instead of failing.
#[tokio::test]
async fn a_plugin_busy_being_written_is_run_once_it_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("busy");
    let mut writer = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .unwrap();
    std::io::Write::write_all(&mut writer, b"#!/bin/sh\necho '{}'\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    // Still open for writing: the kernel refuses to run it.
    let refused = std::process::Command::new(&path).output().unwrap_err();
    assert_eq!(refused.raw_os_error(), Some(26), "{refused}");
    let closer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        drop(writer);
    });
    let e = env("VERSION", dir.path());
    let x = extra();
    let out = exec_raw(&path, &req(Command::Version, &e, &x, STDIN))
        .await
        .unwrap();
    assert_eq!(String::from_utf8(out).unwrap().trim(), "{}");
    closer.join().unwrap();
}

/// True while `pid` runs (a zombie waiting for its reaper counts as gone).
fn running(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

async fn wait_gone(pid: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while running(pid) {
        assert!(Instant::now() < deadline, "process {pid} still running");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits for a pid file the plugin writes and returns its content.
async fn read_pid(path: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(s) = std::fs::read_to_string(path)
            && s.ends_with('\n')
        {
            return s.trim().to_string();
        }
        assert!(
            Instant::now() < deadline,
            "{} never written",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A plugin that starts a grandchild (sleep), records both pids, and waits.
fn forking_plugin(dir: &Path) -> PathBuf {
    write_plugin(
        dir,
        "forks",
        &format!(
            "sleep 300 &\necho $! > {d}/grandchild\necho $$ > {d}/plugin\nwait",
            d = dir.display()
        ),
    )
}

#[tokio::test]
async fn timeout_kills_the_plugins_children_too() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = forking_plugin(dir.path());
    let e = env("ADD", dir.path());
    let x = extra();
    let mut r = req(Command::Add, &e, &x, STDIN);
    r.timeout = Duration::from_millis(700);
    let err = exec_raw(&plugin, &r).await.unwrap_err();
    assert_eq!(err.code.code(), 11, "{err}");
    let plugin_pid = read_pid(&dir.path().join("plugin")).await;
    let grandchild = read_pid(&dir.path().join("grandchild")).await;
    wait_gone(&plugin_pid, Duration::from_secs(3)).await;
    wait_gone(&grandchild, Duration::from_secs(3)).await;
}

#[tokio::test]
async fn dropping_the_call_kills_the_plugin_and_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = forking_plugin(dir.path());
    let e = env("ADD", dir.path());
    let x = extra();
    let r = req(Command::Add, &e, &x, STDIN); // a 10 s timeout of its own
    let grandchild_file = dir.path().join("grandchild");
    let call = exec_raw(&plugin, &r);
    // The caller gives up (e.g. its own deadline) once the plugin is running: the future drops.
    let outcome = tokio::time::timeout(Duration::from_secs(5), async {
        tokio::select! {
            _ = call => panic!("the plugin finished on its own"),
            pid = read_pid(&grandchild_file) => pid,
        }
    })
    .await
    .unwrap();
    let plugin_pid = read_pid(&dir.path().join("plugin")).await;
    wait_gone(&plugin_pid, Duration::from_secs(3)).await;
    wait_gone(&outcome, Duration::from_secs(3)).await;
}

/// Where [`caller_killed_by_test`] runs a plugin; set only when the test re-runs itself.
const CALLER_DIR: &str = "MULTINET_TEST_EXEC_CALLER_DIR";

/// The caller that `killing_the_caller_kills_the_plugin` SIGKILLs: it runs the forking plugin
/// in the directory it is given and waits on it.
#[tokio::test]
#[ignore = "run by killing_the_caller_kills_the_plugin in a process of its own"]
async fn caller_killed_by_test() {
    let dir = PathBuf::from(std::env::var(CALLER_DIR).expect("run by another test"));
    let plugin = forking_plugin(&dir);
    let e = env("ADD", &dir);
    let x = extra();
    let mut r = req(Command::Add, &e, &x, STDIN);
    r.timeout = Duration::from_secs(120);
    let _ = exec_raw(&plugin, &r).await;
    panic!("the plugin was expected to run until this process was killed");
}

#[tokio::test]
async fn killing_the_caller_kills_the_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let mut caller = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "caller_killed_by_test",
            "--ignored",
            "--nocapture",
        ])
        .env(CALLER_DIR, dir.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let plugin_pid = read_pid(&dir.path().join("plugin")).await;
    let grandchild = read_pid(&dir.path().join("grandchild")).await;
    assert!(running(&plugin_pid));
    caller.kill().unwrap(); // SIGKILL: no destructor of the caller runs.
    caller.wait().unwrap();
    // The kernel's parent-death signal kills the plugin at once.
    wait_gone(&plugin_pid, Duration::from_secs(2)).await;
    // The plugin's own child is not covered by the death signal (the kernel clears it on fork);
    // it is still in the plugin's process group, so the test removes it by that group.
    let pgid: i32 = std::fs::read_to_string(format!("/proc/{grandchild}/stat"))
        .map(|s| {
            let after = s.rsplit_once(") ").unwrap().1;
            after.split(' ').nth(2).unwrap().parse().unwrap()
        })
        .unwrap_or(0);
    if pgid > 0 {
        assert_eq!(
            pgid.to_string(),
            plugin_pid,
            "the plugin leads its own group"
        );
        // SAFETY: plain syscall on a group this test created.
        unsafe { libc::killpg(pgid, libc::SIGKILL) };
    }
    wait_gone(&grandchild, Duration::from_secs(2)).await;
}

#[tokio::test]
async fn a_plugin_runs_in_its_own_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = write_plugin(
        dir.path(),
        "pgrp",
        r#"echo "{\"pgid\":\"$(ps -o pgid= -p $$ | tr -d ' ')\",\"pid\":\"$$\"}" >&2; exit 1"#,
    );
    let e = env("DEL", dir.path());
    let x = extra();
    let err = exec_raw(&plugin, &req(Command::Del, &e, &x, STDIN))
        .await
        .unwrap_err();
    let json_start = err.msg.find('{').unwrap();
    let v: serde_json::Value = serde_json::from_str(&err.msg[json_start..]).unwrap();
    assert_eq!(v["pgid"], v["pid"], "{}", err.msg);
    // SAFETY: getpgrp has no preconditions.
    let own_pgid = unsafe { libc::getpgrp() }.to_string();
    assert_ne!(v["pgid"].as_str().unwrap(), own_pgid);
}
