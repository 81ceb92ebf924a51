//! The library API (in-process host-local/static, exec'd external types) and the verbs the
//! reference lacks (GC, STATUS) through our binaries.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod common;

use std::path::Path;

use common::*;
use multinet_cni::{Attachment, CniEnv, GcRequest, Request};
use multinet_ipam::{ipam_add, ipam_check, ipam_del, ipam_gc, ipam_status};
use multinet_testbed::CniCall;
use serde_json::{Value, json};

fn request(cmd: &str, id: &str, ifname: &str, cni_path: &Path, conf: &Value) -> Request {
    let env = CniEnv::from_vars(
        [
            ("CNI_COMMAND", cmd),
            ("CNI_CONTAINERID", id),
            ("CNI_NETNS", "/var/run/netns/x"),
            ("CNI_IFNAME", ifname),
            ("CNI_ARGS", "IgnoreUnknown=1"),
            ("CNI_PATH", cni_path.to_str().unwrap()),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    )
    .unwrap();
    Request::new(
        env,
        serde_json::to_vec(conf).unwrap(),
        vec![("PATH".into(), "/usr/bin:/bin".into())],
    )
    .unwrap()
}

#[tokio::test]
async fn host_local_in_process_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let ipam = json!({"type": "host-local", "subnet": "10.90.0.0/24", "dataDir": dir.path()});
    let conf = json!({"cniVersion": "1.1.0", "name": "lib", "type": "macvlan", "ipam": ipam});
    let cni_path = Path::new("/usr/lib/cni");
    let mut addrs = Vec::new();
    for id in ["a", "b", "c"] {
        let r = ipam_add(&ipam, &request("ADD", id, "net1", cni_path, &conf))
            .await
            .unwrap();
        assert_eq!(r.cni_version.as_str(), "1.1.0");
        addrs.push(r.ips[0].address.to_string());
    }
    assert_eq!(addrs, ["10.90.0.2/24", "10.90.0.3/24", "10.90.0.4/24"]);
    ipam_check(&ipam, &request("CHECK", "b", "net1", cni_path, &conf))
        .await
        .unwrap();
    let e = ipam_check(&ipam, &request("CHECK", "b", "net2", cni_path, &conf))
        .await
        .unwrap_err();
    assert_eq!(e.code.code(), 101);
    ipam_status(&ipam, &request("STATUS", "", "", cni_path, &conf))
        .await
        .unwrap();
    let gc = GcRequest {
        valid_attachments: vec![Attachment {
            container_id: "b".into(),
            ifname: "net1".into(),
        }],
    };
    ipam_gc(&ipam, &request("GC", "", "", cni_path, &conf), &gc)
        .await
        .unwrap();
    assert_eq!(ip_files(&dir.path().join("lib")), ["10.90.0.3"]);
    for _ in 0..2 {
        ipam_del(&ipam, &request("DEL", "b", "net1", cni_path, &conf))
            .await
            .unwrap();
    }
    assert!(ip_files(&dir.path().join("lib")).is_empty());
}

#[tokio::test]
async fn static_in_process() {
    let ipam = json!({"type": "static", "addresses": [{"address": "10.91.0.5/24", "gateway": "10.91.0.1"}]});
    let conf = json!({"cniVersion": "0.4.0", "name": "lib", "type": "macvlan", "ipam": ipam});
    let req = request("ADD", "a", "net1", Path::new("/usr/lib/cni"), &conf);
    let r = ipam_add(&ipam, &req).await.unwrap();
    assert_eq!(r.ips[0].address.to_string(), "10.91.0.5/24");
    assert_eq!(r.cni_version.as_str(), "0.4.0");
    ipam_del(&ipam, &req).await.unwrap();
    let mut with_prev = conf.clone();
    with_prev["prevResult"] = r.to_value(r.cni_version).unwrap();
    ipam_check(
        &ipam,
        &request("CHECK", "a", "net1", Path::new("/usr/lib/cni"), &with_prev),
    )
    .await
    .unwrap();
}

/// A CNI_PATH holding the reference host-local under a name we do not run in-process.
fn external_dir() -> Option<tempfile::TempDir> {
    let reference = theirs("host-local")?;
    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(reference, bin.path().join("ref-host-local")).unwrap();
    Some(bin)
}

#[tokio::test]
async fn external_type_is_executed_from_cni_path() {
    let Some(bin) = external_dir() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let ipam = json!({"type": "ref-host-local", "subnet": "10.92.0.0/24", "dataDir": data.path()});
    // The config's own ipam differs: the section passed in is what the external plugin sees.
    let conf = json!({"cniVersion": "1.0.0", "name": "ext", "type": "macvlan", "ipam": {"type": "static"}});
    let r = ipam_add(&ipam, &request("ADD", "a", "net1", bin.path(), &conf))
        .await
        .unwrap();
    assert_eq!(r.ips[0].address.to_string(), "10.92.0.2/24");
    assert_eq!(
        std::fs::read_to_string(data.path().join("ext/10.92.0.2")).unwrap(),
        "a\r\nnet1"
    );
    ipam_check(&ipam, &request("CHECK", "a", "net1", bin.path(), &conf))
        .await
        .unwrap();
    // Its error comes back with its code and message.
    let e = ipam_add(&ipam, &request("ADD", "a", "net1", bin.path(), &conf))
        .await
        .unwrap_err();
    assert!(e.msg.contains("duplicate allocation"), "{e}");
    ipam_del(&ipam, &request("DEL", "a", "net1", bin.path(), &conf))
        .await
        .unwrap();
    assert!(ip_files(&data.path().join("ext")).is_empty());
    // Not in CNI_PATH: code 7 naming the type.
    let missing = json!({"type": "host-local-typo", "subnet": "10.92.0.0/24"});
    let e = ipam_add(&missing, &request("ADD", "a", "net1", bin.path(), &conf))
        .await
        .unwrap_err();
    assert_eq!(e.code.code(), 7);
    assert!(e.msg.contains("host-local-typo"));
}

fn hl_conf(dir: &Path, v: &str) -> Value {
    json!({"cniVersion": v, "name": "gcnet", "type": "host-local",
           "ipam": {"type": "host-local", "subnet": "10.93.0.0/24", "dataDir": dir}})
}

#[test]
fn binary_gc_with_both_attachment_keys() {
    let bin = ours("host-local");
    for key in ["cni.dev/valid-attachments", "cni.dev/attachments"] {
        let dir = tempfile::tempdir().unwrap();
        let conf = hl_conf(dir.path(), "1.1.0");
        for id in ["keep", "drop1", "drop2"] {
            assert!(run(&bin, &Call::new("ADD", id), &conf).ok);
        }
        assert!(run(&bin, &Call::new("ADD", "keep").ifname("net1"), &conf).ok);
        let mut gc = conf.clone();
        gc[key] = json!([{"containerID": "keep", "ifname": "eth0"}]);
        let o = run(&bin, &Call::new("GC", ""), &gc);
        assert!(o.ok, "{}", o.stdout);
        assert_eq!(o.stdout, Value::Null, "GC prints nothing");
        let left = ip_files(&dir.path().join("gcnet"));
        assert_eq!(left, ["10.93.0.2"], "{key}");
    }
}

#[test]
fn binary_status() {
    let bin = ours("host-local");
    let dir = tempfile::tempdir().unwrap();
    let o = run(
        &bin,
        &Call::new("STATUS", ""),
        &hl_conf(dir.path(), "1.1.0"),
    );
    assert!(o.ok, "{}", o.stdout);
    let o = run(
        &bin,
        &Call::new("STATUS", ""),
        &hl_conf(Path::new("/proc/multinet-no-such"), "1.1.0"),
    );
    assert!(!o.ok);
    assert_eq!(o.code(), 50, "{}", o.stdout);
    let mut bad = hl_conf(dir.path(), "1.1.0");
    bad["ipam"]["subnet"] = json!("10.0.0.0/32");
    assert_eq!(run(&bin, &Call::new("STATUS", ""), &bad).code(), 7);
    assert!(run(&ours("static"), &Call::new("STATUS", ""), &bad).ok);
}

#[test]
fn gc_and_status_need_1_1_0() {
    for plugin in ["host-local", "static"] {
        for v in ["0.3.1", "0.4.0", "1.0.0"] {
            let dir = tempfile::tempdir().unwrap();
            for verb in ["GC", "STATUS"] {
                let o = run(&ours(plugin), &Call::new(verb, ""), &hl_conf(dir.path(), v));
                assert_eq!(o.code(), 1, "{plugin} {verb} {v}: {}", o.stdout);
            }
        }
        let o = run(
            &ours(plugin),
            &Call::new("CHECK", "x"),
            &hl_conf(Path::new("/tmp"), "0.3.1"),
        );
        assert_eq!(o.code(), 1);
    }
}

#[test]
fn version_and_del_without_netns() {
    for plugin in ["host-local", "static"] {
        let o = run(
            &ours(plugin),
            &Call::new("VERSION", ""),
            &json!({"cniVersion": "1.1.0"}),
        );
        assert_eq!(o.stdout["supportedVersions"].as_array().unwrap().len(), 7);
        let dir = tempfile::tempdir().unwrap();
        // No CNI_NETNS at all.
        let out = CniCall::new(ours(plugin), "DEL")
            .env_clear()
            .container_id("gone")
            .ifname("eth0")
            .path("/usr/lib/cni")
            .stdin_json(&hl_conf(dir.path(), "1.0.0"))
            .run();
        assert!(out.success(), "{}", out.stdout);
        assert!(out.stdout.is_empty());
        // DEL of something never added creates nothing.
        assert!(!dir.path().join("gcnet").exists());
    }
}
