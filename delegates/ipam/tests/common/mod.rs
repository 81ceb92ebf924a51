//! Helpers shared by the IPAM integration tests: running a plugin binary through env + stdin,
//! finding the reference plugins, reading a dataDir.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Child;

use multinet_testbed::{CniCall, CniOutput};
use serde_json::Value;

pub const VERSIONS: [&str; 4] = ["0.3.1", "0.4.0", "1.0.0", "1.1.0"];

pub fn ours(name: &str) -> PathBuf {
    match name {
        "host-local" => PathBuf::from(env!("CARGO_BIN_EXE_host-local")),
        "static" => PathBuf::from(env!("CARGO_BIN_EXE_static")),
        other => panic!("no binary {other}"),
    }
}

/// The reference plugin; None (with a visible skip) when not installed, a failure in CI.
#[allow(unused_imports)] // Each test binary uses part of the harness.
pub use multinet_testbed::reference_plugin as theirs;

/// What one invocation printed and returned.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub stdout: Value,
    pub ok: bool,
}

impl Outcome {
    pub fn code(&self) -> u64 {
        self.stdout["code"].as_u64().unwrap_or(0)
    }

    pub fn msg(&self) -> String {
        format!(
            "{} {}",
            self.stdout["msg"].as_str().unwrap_or(""),
            self.stdout["details"].as_str().unwrap_or("")
        )
    }
}

pub struct Call<'a> {
    pub command: &'a str,
    pub container_id: &'a str,
    pub ifname: &'a str,
    pub args: &'a str,
}

impl<'a> Call<'a> {
    pub fn new(command: &'a str, container_id: &'a str) -> Call<'a> {
        Call {
            command,
            container_id,
            ifname: "eth0",
            args: "",
        }
    }

    pub fn ifname(mut self, ifname: &'a str) -> Self {
        self.ifname = ifname;
        self
    }

    pub fn args(mut self, args: &'a str) -> Self {
        self.args = args;
        self
    }
}

pub fn spawn(bin: &Path, call: &Call<'_>, conf: &Value) -> Child {
    CniCall::new(bin, call.command)
        .env_clear()
        .container_id(call.container_id)
        .netns("/var/run/netns/multinet-ipam-test")
        .ifname(call.ifname)
        .args(call.args)
        .path("/usr/lib/cni")
        .stdin_json(conf)
        .spawn()
}

pub fn finish(child: Child) -> Outcome {
    let out = CniOutput::wait(child);
    Outcome {
        stdout: out.json(),
        ok: out.success(),
    }
}

pub fn run(bin: &Path, call: &Call<'_>, conf: &Value) -> Outcome {
    finish(spawn(bin, call, conf))
}

/// IP files of a network directory.
pub fn ip_files(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str().map(String::from))
                .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Every file of a directory tree (relative path → content), lock files as empty.
pub fn snapshot(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            if p.is_dir() {
                walk(base, &p, out);
            } else if rel.ends_with("lock") {
                out.insert(rel, String::new());
            } else {
                out.insert(rel, std::fs::read_to_string(&p).unwrap_or_default());
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

/// The versions the reference accepts (its VERSION answer).
pub fn reference_versions(bin: &Path) -> Vec<String> {
    let out = run(bin, &Call::new("VERSION", ""), &serde_json::json!({}));
    out.stdout["supportedVersions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// The version to run the reference with: `v` if it has it, else its newest.
pub fn reference_version(supported: &[String], v: &str) -> String {
    if supported.iter().any(|s| s == v) {
        v.to_string()
    } else {
        supported.last().unwrap().clone()
    }
}

pub fn with_version(conf: &Value, v: &str) -> Value {
    let mut c = conf.clone();
    c["cniVersion"] = Value::from(v);
    c
}

/// A result with its cniVersion set to `v`, so results of two versions compare field by field.
pub fn normalize(out: &Outcome, v: &str) -> Value {
    let mut s = out.stdout.clone();
    if s.is_object() && s.get("cniVersion").is_some() {
        s["cniVersion"] = Value::from(v);
    }
    s
}
