//! dispatch: every verb, every version gate, every error path, driven without process state.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::cell::RefCell;

use multinet_cni::{
    CniError, CniVersion, ErrorCode, GcRequest, Interface, IpConfig, NetworkResult, Plugin,
    Request, Result, dispatch,
};
use serde_json::{Value, json};

#[derive(Default)]
struct Recorder {
    calls: RefCell<Vec<String>>,
    gc_seen: RefCell<Option<GcRequest>>,
    extra_seen: RefCell<Vec<(String, String)>>,
    fail_with: Option<CniError>,
    only_v1: bool,
}

impl Recorder {
    fn record(&self, verb: &str, req: &Request) -> Result<()> {
        self.calls.borrow_mut().push(verb.to_string());
        *self.extra_seen.borrow_mut() = req.extra_env.clone();
        match &self.fail_with {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }
}

impl Plugin for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }

    fn supported_versions(&self) -> &'static [CniVersion] {
        if self.only_v1 {
            &[CniVersion::V1_0_0, CniVersion::V1_1_0]
        } else {
            multinet_cni::SUPPORTED_VERSIONS
        }
    }

    async fn add(&self, req: &Request) -> Result<NetworkResult> {
        self.record("ADD", req)?;
        Ok(NetworkResult {
            interfaces: vec![Interface {
                name: req.env.ifname.clone(),
                mac: Some("02:00:00:00:00:01".into()),
                mtu: Some(1500),
                sandbox: req.env.netns.as_ref().map(|p| p.display().to_string()),
                ..Interface::default()
            }],
            ips: vec![IpConfig {
                address: "10.1.0.5/24".parse().unwrap(),
                gateway: Some("10.1.0.1".parse().unwrap()),
                interface: Some(0),
            }],
            ..NetworkResult::default()
        })
    }

    async fn del(&self, req: &Request) -> Result<()> {
        self.record("DEL", req)
    }

    async fn check(&self, req: &Request) -> Result<()> {
        self.record("CHECK", req)
    }

    async fn status(&self, req: &Request) -> Result<()> {
        self.record("STATUS", req)
    }

    async fn gc(&self, req: &Request, gc: &GcRequest) -> Result<()> {
        *self.gc_seen.borrow_mut() = Some(gc.clone());
        self.record("GC", req)
    }
}

fn vars(cmd: &str) -> Vec<(String, String)> {
    [
        ("CNI_COMMAND", cmd),
        ("CNI_CONTAINERID", "ctr1"),
        ("CNI_NETNS", "/var/run/netns/ctr1"),
        ("CNI_IFNAME", "net1"),
        ("CNI_ARGS", "IgnoreUnknown=1"),
        ("CNI_PATH", "/usr/lib/cni"),
        (
            "TRACEPARENT",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn conf(version: &str) -> Vec<u8> {
    serde_json::to_vec(
        &json!({"cniVersion": version, "name": "n1", "type": "recorder", "master": "eth1"}),
    )
    .unwrap()
}

fn run(p: &Recorder, vars: Vec<(String, String)>, stdin: &[u8]) -> (Value, i32) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (out, code) = rt.block_on(dispatch(p, vars, stdin));
    let v = if out.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&out).expect("stdout is JSON only")
    };
    (v, code)
}

fn assert_error(v: &Value, code: i32, want: u32, needle: &str) {
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["code"], want, "{v}");
    assert!(
        v["msg"].as_str().unwrap().contains(needle),
        "{needle:?} not in {v}"
    );
    assert!(v["cniVersion"].is_string());
}

#[test]
fn add_prints_result_in_config_version() {
    for v in CniVersion::ALL {
        let p = Recorder::default();
        let (out, code) = run(&p, vars("ADD"), &conf(v.as_str()));
        assert_eq!(code, 0, "{v}: {out}");
        assert_eq!(out["cniVersion"], v.as_str());
        if v.is_legacy_result() {
            assert_eq!(out["ip4"]["ip"], "10.1.0.5/24");
        } else {
            assert_eq!(out["ips"][0]["address"], "10.1.0.5/24");
            assert_eq!(out["interfaces"][0]["name"], "net1");
            assert_eq!(
                out["interfaces"][0].get("mtu").is_some(),
                v >= CniVersion::V1_0_0
            );
            assert_eq!(
                out["ips"][0].get("version").is_some(),
                v.has_ip_version_field()
            );
        }
        assert_eq!(*p.calls.borrow(), vec!["ADD"]);
        assert!(
            p.extra_seen
                .borrow()
                .iter()
                .any(|(k, _)| k == "TRACEPARENT")
        );
    }
}

#[test]
fn del_check_status_gc_print_nothing_on_success() {
    for (verb, since) in [
        ("DEL", CniVersion::V0_1_0),
        ("CHECK", CniVersion::V0_4_0),
        ("STATUS", CniVersion::V1_1_0),
        ("GC", CniVersion::V1_1_0),
    ] {
        for v in CniVersion::ALL {
            let p = Recorder::default();
            let (out, code) = run(&p, vars(verb), &conf(v.as_str()));
            if v >= since {
                assert_eq!((code, &out), (0, &Value::Null), "{verb} {v}");
                assert_eq!(*p.calls.borrow(), vec![verb]);
            } else {
                assert_error(&out, code, 1, verb);
                assert!(
                    p.calls.borrow().is_empty(),
                    "{verb} {v} must not reach the plugin"
                );
                assert_eq!(out["cniVersion"], v.as_str());
            }
        }
    }
}

#[test]
fn version_answers_without_config() {
    let p = Recorder::default();
    let only_cmd = vec![("CNI_COMMAND".to_string(), "VERSION".to_string())];
    let (out, code) = run(&p, only_cmd.clone(), br#"{"cniVersion":"1.0.0"}"#);
    assert_eq!(code, 0);
    assert_eq!(out["cniVersion"], "1.1.0");
    assert_eq!(out["supportedVersions"].as_array().unwrap().len(), 7);
    let (out, code) = run(&p, only_cmd, b"");
    assert_eq!(code, 0);
    assert_eq!(out["supportedVersions"][0], "0.1.0");
    let narrow = Recorder {
        only_v1: true,
        ..Recorder::default()
    };
    let (out, _) = run(&narrow, vars("VERSION"), b"");
    assert_eq!(out["supportedVersions"], json!(["1.0.0", "1.1.0"]));
    assert!(p.calls.borrow().is_empty());
}

#[test]
fn unsupported_config_version_is_code_1() {
    let narrow = Recorder {
        only_v1: true,
        ..Recorder::default()
    };
    let (out, code) = run(&narrow, vars("ADD"), &conf("0.4.0"));
    assert_error(&out, code, 1, "0.4.0");
    let p = Recorder::default();
    let (out, code) = run(&p, vars("ADD"), &conf("0.9.0"));
    assert_error(&out, code, 1, "0.9.0");
    assert_eq!(
        out["cniVersion"], "1.1.0",
        "unknown version: errors speak the latest"
    );
}

#[test]
fn env_errors_are_code_4_naming_the_variable() {
    let p = Recorder::default();
    let cases: Vec<(&str, &str, &str)> = vec![
        ("CNI_COMMAND", "BOGUS", "CNI_COMMAND"),
        ("CNI_CONTAINERID", "", "CNI_CONTAINERID"),
        ("CNI_CONTAINERID", "_bad", "CNI_CONTAINERID"),
        ("CNI_IFNAME", "", "CNI_IFNAME"),
        ("CNI_IFNAME", "this-name-is-too-long", "CNI_IFNAME"),
        ("CNI_IFNAME", "..", "CNI_IFNAME"),
        ("CNI_NETNS", "", "CNI_NETNS"),
        ("CNI_PATH", "", "CNI_PATH"),
        ("CNI_ARGS", "novalue", "CNI_ARGS"),
    ];
    for (var, value, needle) in cases {
        let mut v = vars("ADD");
        for (k, val) in &mut v {
            if k == var {
                *val = value.to_string();
            }
        }
        let (out, code) = run(&p, v, &conf("1.0.0"));
        assert_error(&out, code, 4, needle);
        assert_eq!(out["cniVersion"], "1.0.0");
    }
    assert!(p.calls.borrow().is_empty());
}

#[test]
fn a_container_id_over_the_limit_is_code_4_for_every_verb() {
    let p = Recorder::default();
    let limit = multinet_cni::env::MAX_CONTAINER_ID_LEN;
    for verb in ["ADD", "DEL", "CHECK"] {
        let mut v = vars(verb);
        for (k, val) in &mut v {
            if k == "CNI_CONTAINERID" {
                *val = "c".repeat(limit + 1);
            }
        }
        let (out, code) = run(&p, v, &conf("1.0.0"));
        assert_error(&out, code, 4, "CNI_CONTAINERID");
        assert_error(&out, code, 4, &limit.to_string());
        assert!(!out["msg"].as_str().unwrap().contains("cccc"), "{out}");
    }
    // At the limit the plugin is called.
    let mut v = vars("ADD");
    for (k, val) in &mut v {
        if k == "CNI_CONTAINERID" {
            *val = "c".repeat(limit);
        }
    }
    let (_, code) = run(&p, v, &conf("1.0.0"));
    assert_eq!(code, 0);
    assert_eq!(*p.calls.borrow(), vec!["ADD"]);
}

#[test]
fn del_without_netns_and_status_without_container() {
    let p = Recorder::default();
    let v: Vec<_> = vars("DEL")
        .into_iter()
        .filter(|(k, _)| k != "CNI_NETNS")
        .collect();
    let (_, code) = run(&p, v, &conf("1.0.0"));
    assert_eq!(code, 0);
    let v: Vec<_> = vars("STATUS")
        .into_iter()
        .filter(|(k, _)| k != "CNI_CONTAINERID" && k != "CNI_IFNAME" && k != "CNI_NETNS")
        .collect();
    let (_, code) = run(&p, v, &conf("1.1.0"));
    assert_eq!(code, 0);
    assert_eq!(*p.calls.borrow(), vec!["DEL", "STATUS"]);
}

#[test]
fn config_errors() {
    let p = Recorder::default();
    let (out, code) = run(&p, vars("ADD"), b"{not json");
    assert_error(&out, code, 6, "JSON");
    let (out, code) = run(&p, vars("ADD"), br#"{"cniVersion":"1.0.0","name":"n"}"#);
    assert_error(&out, code, 7, "type");
    let (out, code) = run(&p, vars("ADD"), b"[]");
    assert_error(&out, code, 7, "object");
    assert!(p.calls.borrow().is_empty());
}

#[test]
fn a_standard_key_of_the_wrong_type_is_named_in_the_error_json() {
    let p = Recorder::default();
    for (stdin, key) in [
        (
            r#"{"cniVersion":5,"name":"n","type":"recorder"}"#,
            "cniVersion",
        ),
        (
            r#"{"cniVersion":"1.0.0","name":["n"],"type":"recorder"}"#,
            "name",
        ),
        (
            r#"{"cniVersion":"1.0.0","name":"n","type":{"a":1}}"#,
            "type",
        ),
        (
            r#"{"cniVersion":"1.0.0","name":"n","type":"recorder","dns":{"nameservers":"x"}}"#,
            "nameservers",
        ),
        (
            r#"{"cniVersion":"1.0.0","name":"n","type":"recorder","capabilities":[]}"#,
            "capabilities",
        ),
        (
            r#"{"cniVersion":"1.0.0","name":"n","type":"recorder","runtimeConfig":1}"#,
            "runtimeConfig",
        ),
    ] {
        let (out, code) = run(&p, vars("ADD"), stdin.as_bytes());
        assert_error(&out, code, 7, &format!("{key:?}"));
    }
    // The error is printed in the latest version when the config's own cannot be read.
    let (out, _) = run(&p, vars("ADD"), br#"{"cniVersion":5,"type":"recorder"}"#);
    assert_eq!(out["cniVersion"], CniVersion::LATEST.as_str());
    for stdin in [
        &br#"{"cniVersion":5}"#[..],
        b"{",
        b"[]",
        br#"{"cniVersion":"9.9"}"#,
    ] {
        assert_eq!(multinet_cni::error_version(stdin), CniVersion::LATEST);
    }
    assert!(p.calls.borrow().is_empty());
}

#[test]
fn plugin_errors_keep_their_code() {
    for e in [
        CniError::new(ErrorCode::UnsupportedField, "mode \"x\""),
        CniError::new(ErrorCode::UnknownContainer, "gone"),
        CniError::io("disk"),
        CniError::new(ErrorCode::InvalidNetns, "no ns"),
        CniError::try_again("later"),
        CniError::new(ErrorCode::NotAvailable, "down"),
        CniError::new(ErrorCode::LimitedConnectivity, "degraded"),
        CniError::internal("bug"),
        CniError::new(ErrorCode::Plugin(120), "vf busy").with_details("pf eth3"),
    ] {
        let p = Recorder {
            fail_with: Some(e.clone()),
            ..Recorder::default()
        };
        for verb in ["ADD", "DEL", "CHECK", "STATUS", "GC"] {
            let (out, code) = run(&p, vars(verb), &conf("1.1.0"));
            assert_error(&out, code, e.code.code(), &e.msg);
            assert_eq!(out["details"], e.details.as_str());
        }
    }
}

#[test]
fn gc_reads_both_attachment_keys() {
    for key in ["cni.dev/valid-attachments", "cni.dev/attachments"] {
        let p = Recorder::default();
        let stdin = serde_json::to_vec(&json!({
            "cniVersion": "1.1.0", "name": "n1", "type": "recorder",
            key: [{"containerID": "a", "ifname": "eth0"}, {"containerID": "b", "ifname": "net1"}]
        }))
        .unwrap();
        let (_, code) = run(&p, vars("GC"), &stdin);
        assert_eq!(code, 0);
        let gc = p.gc_seen.borrow().clone().unwrap();
        assert_eq!(gc.valid_attachments.len(), 2);
        assert!(gc.is_valid("b", "net1"));
        assert!(!gc.is_valid("b", "eth0"));
    }
    let p = Recorder::default();
    let null_list =
        br#"{"cniVersion":"1.1.0","name":"n","type":"r","cni.dev/valid-attachments":null}"#;
    let (_, code) = run(&p, vars("GC"), null_list);
    assert_eq!(code, 0);
    assert!(
        p.gc_seen
            .borrow()
            .as_ref()
            .unwrap()
            .valid_attachments
            .is_empty()
    );
    let bad =
        br#"{"cniVersion":"1.1.0","name":"n","type":"r","cni.dev/valid-attachments":[{"x":1}]}"#;
    let (out, code) = run(&p, vars("GC"), bad);
    assert_error(&out, code, 7, "cni.dev/valid-attachments");
}

#[test]
fn add_result_that_cannot_be_printed_in_020_is_an_error() {
    struct NoIp;
    impl Plugin for NoIp {
        fn name(&self) -> &'static str {
            "noip"
        }
        async fn add(&self, _: &Request) -> Result<NetworkResult> {
            Ok(NetworkResult::default())
        }
        async fn del(&self, _: &Request) -> Result<()> {
            Ok(())
        }
        async fn check(&self, _: &Request) -> Result<()> {
            Ok(())
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (out, code) = rt.block_on(dispatch(&NoIp, vars("ADD"), &conf("0.2.0")));
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_error(&v, code, 1, "0.2.0");
    // Default STATUS and GC succeed.
    let (out, code) = rt.block_on(dispatch(&NoIp, vars("STATUS"), &conf("1.1.0")));
    assert_eq!((out.len(), code), (0, 0));
    let (out, code) = rt.block_on(dispatch(&NoIp, vars("GC"), &conf("1.1.0")));
    assert_eq!((out.len(), code), (0, 0));
}
