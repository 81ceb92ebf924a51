//! A table of bad IPAM configs: each is refused with its code and a message naming the key,
//! through the binaries and the library API, in every version, and leaves no address file
//! (nor any directory) behind.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod common;

use std::path::Path;

use common::*;
use multinet_cni::{CniEnv, Request};
use serde_json::{Value, json};

struct Bad {
    /// The `ipam` section; None means no `ipam` key at all.
    ipam: Option<Value>,
    args: &'static str,
    /// Extra top-level keys.
    top: Value,
    code: u64,
    key: &'static str,
    /// Whether the reference refuses it too (it accepts a few ours refuses).
    reference_refuses: bool,
}

fn bad(ipam: Value, code: u64, key: &'static str) -> Bad {
    Bad {
        ipam: Some(ipam),
        args: "",
        top: json!({}),
        code,
        key,
        reference_refuses: true,
    }
}

fn table() -> Vec<Bad> {
    let hl = |mut v: Value| {
        v["type"] = json!("host-local");
        v
    };
    let st = |mut v: Value| {
        v["type"] = json!("static");
        v
    };
    vec![
        bad(hl(json!({"subnet": "10.0.0.0/33"})), 7, "ipam.subnet"),
        bad(hl(json!({"subnet": "not-a-cidr"})), 7, "ipam.subnet"),
        bad(
            hl(json!({"ranges": [[{"subnet": "10.1.0.0/24"}], [{"subnet": "10.1.0.128/25"}]]})),
            7,
            "ipam.ranges[1]",
        ),
        bad(
            hl(json!({"ranges": [[{"subnet": "10.1.0.0/24"}, {"subnet": "10.1.0.0/25"}]]})),
            7,
            "ipam.ranges[0][1]",
        ),
        bad(
            hl(json!({"subnet": "10.2.0.0/24", "rangeStart": "10.3.0.1"})),
            7,
            "ipam.rangeStart",
        ),
        bad(
            hl(json!({"ranges": [[{"subnet": "10.2.0.0/24", "rangeEnd": "10.2.1.1"}]]})),
            7,
            "ipam.ranges[0][0].rangeEnd",
        ),
        bad(
            hl(
                json!({"subnet": "10.9.0.0/24", "rangeStart": "10.9.0.50", "rangeEnd": "10.9.0.40"}),
            ),
            7,
            "ipam.rangeEnd",
        ),
        bad(hl(json!({"subnet": "10.4.0.0/32"})), 7, "ipam.subnet"),
        bad(hl(json!({"subnet": "10.4.0.0/31"})), 7, "ipam.subnet"),
        bad(hl(json!({"subnet": "2001:db8::/127"})), 7, "ipam.subnet"),
        bad(hl(json!({"subnet": "10.10.0.5/24"})), 7, "ipam.subnet"),
        bad(
            hl(json!({"ranges": [[{"gateway": "10.5.0.1"}]]})),
            7,
            "ipam.ranges[0][0].subnet",
        ),
        bad(hl(json!({})), 7, "ipam.ranges"),
        bad(hl(json!({"ranges": "10.12.0.0/24"})), 7, "ipam.ranges"),
        bad(
            hl(json!({"ranges": [[{"subnet": "10.1.0.0/24"}, {"subnet": "2001:db8::/64"}]]})),
            7,
            "ipam.ranges[0][1]",
        ),
        bad(
            hl(json!({"subnet": "10.6.0.0/24", "gateway": "10.6.0.300"})),
            7,
            "ipam.gateway",
        ),
        Bad {
            reference_refuses: false,
            ..bad(
                hl(json!({"subnet": "10.6.0.0/24", "gateway": "2001:db8::1"})),
                7,
                "ipam.gateway",
            )
        },
        bad(
            hl(json!({"subnet": "10.7.0.0/24", "routes": [{"dst": "10.8.0.0/33"}]})),
            7,
            "ipam.routes[0].dst",
        ),
        bad(
            hl(json!({"subnet": "10.7.0.0/24", "routes": [{"dst": "10.8.0.0/16", "gw": "nope"}]})),
            7,
            "ipam.routes[0].gw",
        ),
        bad(
            hl(json!({"subnet": "10.11.0.0/24", "dataDir": 5})),
            7,
            "ipam.dataDir",
        ),
        bad(
            hl(json!({"subnet": "10.13.0.0/24", "resolvConf": "/nonexistent/resolv.conf"})),
            7,
            "ipam.resolvConf",
        ),
        Bad {
            args: "IgnoreUnknown=1;IP=10.99.0.5",
            ..bad(hl(json!({"subnet": "10.14.0.0/24"})), 7, "CNI_ARGS IP")
        },
        Bad {
            args: "IgnoreUnknown=1;IP=bogus",
            ..bad(hl(json!({"subnet": "10.14.0.0/24"})), 7, "CNI_ARGS IP")
        },
        Bad {
            top: json!({"args": {"cni": {"ips": ["bogus"]}}}),
            ..bad(hl(json!({"subnet": "10.15.0.0/24"})), 7, "args.cni.ips[0]")
        },
        Bad {
            top: json!({"runtimeConfig": {"ips": ["10.99.0.1"]}}),
            ..bad(
                hl(json!({"subnet": "10.15.0.0/24"})),
                7,
                "runtimeConfig.ips[0]",
            )
        },
        Bad {
            ipam: None,
            ..bad(json!({}), 7, "ipam")
        },
        Bad {
            top: json!({"name": "../escape"}),
            reference_refuses: false,
            ..bad(hl(json!({"subnet": "10.16.0.0/24"})), 7, "name")
        },
        bad(
            st(json!({"addresses": [{"address": "10.20.0.5"}]})),
            7,
            "ipam.addresses[0].address",
        ),
        bad(
            st(json!({"addresses": [{"address": "10.20.0.5/24", "gateway": "x"}]})),
            7,
            "ipam.addresses[0].gateway",
        ),
        Bad {
            args: "IgnoreUnknown=1;IP=10.20.0.5/24;GATEWAY=nope",
            ..bad(st(json!({})), 7, "CNI_ARGS GATEWAY")
        },
        bad(
            st(json!({"routes": [{"dst": "x"}]})),
            7,
            "ipam.routes[0].dst",
        ),
        bad(
            json!({"type": "no-such-ipam-plugin", "subnet": "10.17.0.0/24"}),
            7,
            "no-such-ipam-plugin",
        ),
        bad(json!({"subnet": "10.18.0.0/24"}), 7, "ipam.type"),
    ]
}

fn conf_of(b: &Bad, data_dir: &Path, v: &str) -> Value {
    let mut c = json!({"cniVersion": v, "name": "badnet", "type": "macvlan"});
    if let Some(ipam) = &b.ipam {
        let mut ipam = ipam.clone();
        if ipam.get("dataDir").is_none() {
            ipam["dataDir"] = json!(data_dir);
        }
        c["ipam"] = ipam;
    }
    for (k, val) in b.top.as_object().unwrap() {
        c[k] = val.clone();
    }
    c
}

/// Which of our binaries reads this config (the ipam type decides; none for other types).
fn binary_for(b: &Bad) -> Option<&'static str> {
    match b.ipam.as_ref().map(|i| i["type"].as_str()) {
        None => Some("host-local"),
        Some(Some("host-local")) => Some("host-local"),
        Some(Some("static")) => Some("static"),
        _ => None,
    }
}

fn assert_nothing_left(root: &Path, ctx: &str) {
    let left: Vec<_> = walk(root);
    assert!(left.is_empty(), "{ctx}: left behind {left:?}");
    assert!(
        !Path::new("/var/lib/cni/networks/badnet").exists(),
        "{ctx}: wrote the default dataDir"
    );
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.push(p.display().to_string());
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}

#[test]
fn table_has_at_least_twelve_entries() {
    assert!(table().len() >= 12);
}

#[test]
fn binaries_refuse_with_code_and_key() {
    let reference_hl = theirs("host-local");
    for b in table() {
        let Some(plugin) = binary_for(&b) else {
            continue;
        };
        for v in VERSIONS {
            let root = tempfile::tempdir().unwrap();
            let data = root.path().join("data");
            std::fs::create_dir(&data).unwrap();
            let conf = conf_of(&b, &data, v);
            let ctx = format!("{plugin} v{v} {conf}");
            let o = run(&ours(plugin), &Call::new("ADD", "ctr").args(b.args), &conf);
            assert!(!o.ok, "{ctx}: accepted");
            assert_eq!(o.code(), b.code, "{ctx}: {}", o.stdout);
            assert!(
                o.msg().contains(b.key),
                "{ctx}: message does not name {}: {}",
                b.key,
                o.msg()
            );
            assert_eq!(o.stdout["cniVersion"], v);
            std::fs::remove_dir(&data).unwrap();
            assert_nothing_left(root.path(), &ctx);

            if b.reference_refuses
                && let Some(reference) = theirs(plugin).or_else(|| reference_hl.clone())
            {
                let ref_versions = reference_versions(&reference);
                let rv = reference_version(&ref_versions, v);
                let ref_conf = with_version(&conf, &rv);
                let t = run(&reference, &Call::new("ADD", "ctr").args(b.args), &ref_conf);
                assert!(!t.ok, "{ctx}: the reference accepts it: {}", t.stdout);
            }
        }
    }
}

#[test]
fn library_refuses_with_code_and_key() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for b in table() {
        for v in VERSIONS {
            let root = tempfile::tempdir().unwrap();
            let data = root.path().join("data");
            std::fs::create_dir(&data).unwrap();
            let conf = conf_of(&b, &data, v);
            let ctx = format!("library v{v} {conf}");
            let env = CniEnv::from_vars(
                [
                    ("CNI_COMMAND", "ADD"),
                    ("CNI_CONTAINERID", "ctr"),
                    ("CNI_NETNS", "/var/run/netns/x"),
                    ("CNI_IFNAME", "net1"),
                    ("CNI_ARGS", b.args),
                    ("CNI_PATH", "/usr/lib/cni"),
                ]
                .map(|(k, v)| (k.to_string(), v.to_string())),
            )
            .unwrap();
            let req = Request::new(env, serde_json::to_vec(&conf).unwrap(), vec![]).unwrap();
            let ipam = conf
                .get("ipam")
                .cloned()
                .unwrap_or(json!({"type": "host-local"}));
            let err = if b.ipam.is_none() {
                // No ipam key: the section passed is the (absent) config one, via the plugin.
                let out = rt.block_on(multinet_cni::Plugin::add(
                    &multinet_ipam::HostLocalPlugin,
                    &req,
                ));
                out.unwrap_err()
            } else {
                rt.block_on(multinet_ipam::ipam_add(&ipam, &req))
                    .unwrap_err()
            };
            assert_eq!(u64::from(err.code.code()), b.code, "{ctx}: {err}");
            assert!(err.to_string().contains(b.key), "{ctx}: {err}");
            std::fs::remove_dir(&data).unwrap();
            assert_nothing_left(root.path(), &ctx);
        }
    }
}
