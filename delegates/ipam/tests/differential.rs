//! The same configs and call sequences through the reference plugins and ours, per cniVersion:
//! same results, same failures (ours with our documented codes), same files in the dataDir.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod common;

use std::path::Path;

use common::*;
use serde_json::{Value, json};

struct Step<'a> {
    call: Call<'a>,
    /// None: must succeed. Some(code): both fail, ours with this code.
    fails_with: Option<u64>,
}

fn ok(call: Call<'_>) -> Step<'_> {
    Step {
        call,
        fails_with: None,
    }
}

fn fails(call: Call<'_>, code: u64) -> Step<'_> {
    Step {
        call,
        fails_with: Some(code),
    }
}

/// Runs `steps` through both plugins, each on its own dataDir, for every version.
fn differential(plugin: &str, conf_for: impl Fn(&Path) -> Value, steps: &[Step<'_>]) {
    let Some(reference) = theirs(plugin) else {
        return;
    };
    let ref_versions = reference_versions(&reference);
    for v in VERSIONS {
        let rv = reference_version(&ref_versions, v);
        let our_dir = tempfile::tempdir().unwrap();
        let ref_dir = tempfile::tempdir().unwrap();
        let our_conf = with_version(&conf_for(our_dir.path()), v);
        let ref_conf = with_version(&conf_for(ref_dir.path()), &rv);
        for (i, step) in steps.iter().enumerate() {
            let ctx = format!(
                "{plugin} v{v} step {i} {} {}",
                step.call.command, step.call.container_id
            );
            if step.call.command == "CHECK" && v == "0.3.1" {
                continue;
            }
            let o = run(&ours(plugin), &step.call, &our_conf);
            let t = run(&reference, &step.call, &ref_conf);
            match step.fails_with {
                None => {
                    assert!(o.ok, "{ctx}: ours failed: {}", o.stdout);
                    assert!(t.ok, "{ctx}: reference failed: {}", t.stdout);
                    assert_eq!(normalize(&o, v), normalize(&t, v), "{ctx}");
                    if step.call.command == "ADD" {
                        assert_eq!(o.stdout["cniVersion"], v, "{ctx}");
                    }
                }
                Some(code) => {
                    assert!(!o.ok, "{ctx}: ours succeeded: {}", o.stdout);
                    assert!(!t.ok, "{ctx}: reference succeeded: {}", t.stdout);
                    assert_eq!(o.code(), code, "{ctx}: {}", o.stdout);
                    assert!(
                        t.code() != 0,
                        "{ctx}: reference error has a code: {}",
                        t.stdout
                    );
                    assert_eq!(o.stdout["cniVersion"], v, "{ctx}");
                }
            }
        }
        assert_eq!(
            snapshot(our_dir.path()),
            snapshot(ref_dir.path()),
            "{plugin} v{v}: dataDir contents differ"
        );
    }
}

fn host_local(ipam: Value) -> impl Fn(&Path) -> Value {
    move |dir: &Path| {
        let mut ipam = ipam.clone();
        ipam["dataDir"] = json!(dir);
        json!({"cniVersion": "1.0.0", "name": "diffnet", "type": "macvlan", "master": "eth9", "ipam": ipam})
    }
}

#[test]
fn host_local_legacy_subnet_lifecycle() {
    differential(
        "host-local",
        host_local(json!({"type": "host-local", "subnet": "10.50.0.0/24",
                          "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.50.0.254"}]})),
        &[
            ok(Call::new("ADD", "c1")),
            ok(Call::new("ADD", "c2")),
            ok(Call::new("ADD", "c1").ifname("net1")),
            ok(Call::new("DEL", "c1")),
            ok(Call::new("ADD", "c3")),
            ok(Call::new("CHECK", "c2")),
            fails(Call::new("CHECK", "c1"), 101),
            fails(Call::new("ADD", "c3"), 100),
            ok(Call::new("DEL", "c2")),
            ok(Call::new("DEL", "c2")),
            ok(Call::new("DEL", "never-added")),
        ],
    );
}

#[test]
fn host_local_dual_stack_ranges_with_bounds() {
    differential(
        "host-local",
        host_local(json!({"type": "host-local", "ranges": [
            [{"subnet": "10.51.0.0/16", "rangeStart": "10.51.3.10", "rangeEnd": "10.51.3.12", "gateway": "10.51.0.254"}],
            [{"subnet": "2001:db8:51::/64", "rangeStart": "2001:db8:51::100", "rangeEnd": "2001:db8:51::1ff"}]
        ]})),
        &[
            ok(Call::new("ADD", "a")),
            ok(Call::new("ADD", "b")),
            ok(Call::new("ADD", "c")),
            fails(Call::new("ADD", "d"), 11),
            ok(Call::new("DEL", "b")),
            ok(Call::new("ADD", "d")),
            ok(Call::new("CHECK", "d")),
        ],
    );
}

#[test]
fn host_local_range_set_with_two_pools_moves_on_and_skips_gateway() {
    differential(
        "host-local",
        host_local(json!({"type": "host-local", "ranges": [[
            {"subnet": "10.52.0.0/30"},
            {"subnet": "10.52.1.0/29", "gateway": "10.52.1.3"}
        ]]})),
        &[
            ok(Call::new("ADD", "a")),
            ok(Call::new("ADD", "b")),
            ok(Call::new("ADD", "c")),
            ok(Call::new("ADD", "d")),
            ok(Call::new("ADD", "e")),
            ok(Call::new("ADD", "f")),
            fails(Call::new("ADD", "g"), 11),
            ok(Call::new("DEL", "a")),
            ok(Call::new("ADD", "g")),
        ],
    );
}

#[test]
fn host_local_requested_ips() {
    let conf = |dir: &Path| {
        let mut c =
            host_local(json!({"type": "host-local", "ranges": [
            [{"subnet": "10.53.0.0/24"}], [{"subnet": "2001:db8:53::/64"}]]}))(dir);
        c["args"] = json!({"cni": {"ips": ["2001:db8:53::77"]}});
        c
    };
    differential(
        "host-local",
        conf,
        &[
            ok(Call::new("ADD", "a").args("IgnoreUnknown=1;IP=10.53.0.200")),
            fails(
                Call::new("ADD", "b").args("IgnoreUnknown=1;IP=10.53.0.200"),
                100,
            ),
            fails(
                Call::new("ADD", "c").args("IgnoreUnknown=1;IP=10.53.0.1"),
                7,
            ),
            fails(
                Call::new("ADD", "d").args("IgnoreUnknown=1;IP=10.99.0.5"),
                7,
            ),
            ok(Call::new("DEL", "a")),
            ok(Call::new("ADD", "e").args("IP=10.53.0.200/24")),
        ],
    );
    let runtime = |dir: &Path| {
        let mut c = host_local(json!({"type": "host-local", "subnet": "10.54.0.0/24"}))(dir);
        c["runtimeConfig"] = json!({"ips": ["10.54.0.33/24"]});
        c
    };
    differential(
        "host-local",
        runtime,
        &[ok(Call::new("ADD", "a")), fails(Call::new("ADD", "b"), 100)],
    );
}

#[test]
fn host_local_resolv_conf_and_gateway_outside_subnet() {
    let dir = tempfile::tempdir().unwrap();
    let resolv = dir.path().join("resolv.conf");
    std::fs::write(
        &resolv,
        "nameserver 10.55.0.53\nsearch a.example b.example\noptions ndots:3\ndomain example\n",
    )
    .unwrap();
    differential(
        "host-local",
        host_local(
            json!({"type": "host-local", "subnet": "10.55.0.0/24", "gateway": "10.99.0.1", "resolvConf": resolv}),
        ),
        &[ok(Call::new("ADD", "a")), ok(Call::new("ADD", "b"))],
    );
}

#[test]
fn host_local_invalid_configs_fail_on_both() {
    for ipam in [
        json!({"type": "host-local", "subnet": "10.56.0.0/31"}),
        json!({"type": "host-local", "subnet": "10.56.0.0/32"}),
        json!({"type": "host-local", "subnet": "10.56.0.0/24", "rangeStart": "10.57.0.1"}),
        json!({"type": "host-local", "subnet": "10.56.0.0/24", "rangeEnd": "10.57.0.1"}),
        json!({"type": "host-local", "subnet": "10.56.0.9/24"}),
        json!({"type": "host-local", "ranges": [[{"subnet": "10.56.0.0/24"}], [{"subnet": "10.56.0.0/25"}]]}),
        json!({"type": "host-local", "ranges": [[{"subnet": "10.56.0.0/24"}, {"subnet": "2001:db8::/64"}]]}),
        json!({"type": "host-local"}),
        json!({"type": "host-local", "subnet": "10.56.0.0/24", "resolvConf": "/nonexistent/resolv.conf"}),
    ] {
        differential(
            "host-local",
            host_local(ipam),
            &[fails(Call::new("ADD", "a"), 7)],
        );
    }
}

fn static_conf(ipam: Value) -> impl Fn(&Path) -> Value {
    move |_dir: &Path| json!({"cniVersion": "1.0.0", "name": "s", "type": "macvlan", "ipam": ipam.clone()})
}

#[test]
fn static_results_match() {
    let ipam = json!({"type": "static",
        "addresses": [{"address": "10.60.0.5/24", "gateway": "10.60.0.1"}, {"address": "2001:db8:60::5/64"}],
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0", "gw": "2001:db8:60::1"}],
        "dns": {"nameservers": ["10.60.0.53"], "domain": "example", "search": ["example"], "options": ["ndots:2"]}});
    differential(
        "static",
        static_conf(ipam.clone()),
        &[
            ok(Call::new("ADD", "a")),
            ok(Call::new("ADD", "a")
                .args("IgnoreUnknown=1;IP=10.61.0.5/16,2001:db8:61::5/64;GATEWAY=10.61.0.1")),
            ok(Call::new("DEL", "a")),
        ],
    );
    let mut with_args = static_conf(ipam)(Path::new("/"));
    with_args["args"] = json!({"cni": {"ips": ["10.62.0.5/24"]}});
    let args_conf = with_args.clone();
    differential(
        "static",
        move |_| args_conf.clone(),
        &[ok(Call::new("ADD", "a"))],
    );
    with_args["runtimeConfig"] = json!({"ips": ["10.63.0.5/24"]});
    differential(
        "static",
        move |_| with_args.clone(),
        &[ok(Call::new("ADD", "a"))],
    );
}

#[test]
fn static_check_against_prev_result() {
    let conf = |gw: &str| {
        let gw = gw.to_string();
        move |_: &Path| {
            json!({"cniVersion": "1.0.0", "name": "s", "type": "macvlan",
                   "ipam": {"type": "static", "addresses": [{"address": "10.64.0.5/24", "gateway": "10.64.0.1"}]},
                   "prevResult": {"ips": [{"address": "10.64.0.5/24", "gateway": gw}]}})
        }
    };
    differential("static", conf("10.64.0.1"), &[ok(Call::new("CHECK", "a"))]);
    differential(
        "static",
        conf("10.64.0.2"),
        &[fails(Call::new("CHECK", "a"), 101)],
    );
}

#[test]
fn static_invalid_configs_fail_on_both() {
    for (ipam, args) in [
        (
            json!({"type": "static", "addresses": [{"address": "10.65.0.5"}]}),
            "",
        ),
        (
            json!({"type": "static", "addresses": [{"address": "nope/24"}]}),
            "",
        ),
        (json!({"type": "static"}), "IgnoreUnknown=1;IP=10.65.0.5"),
        (
            json!({"type": "static"}),
            "IgnoreUnknown=1;IP=10.65.0.5/24;GATEWAY=x",
        ),
    ] {
        let conf = static_conf(ipam);
        differential(
            "static",
            conf,
            &[fails(Call::new("ADD", "a").args(args), 7)],
        );
    }
    // No ipam at all.
    differential(
        "static",
        |_: &Path| json!({"cniVersion": "1.0.0", "name": "s", "type": "static"}),
        &[fails(Call::new("ADD", "a"), 7)],
    );
}
