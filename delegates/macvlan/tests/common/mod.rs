//! Shared harness of the privileged tests: a "node" (a host namespace with a veth whose end
//! `mvm0` is the master and carries the default route, plus a container namespace), running a
//! plugin binary from inside the node's host namespace, and the container's kernel state in a
//! normalised form that two nodes can be compared on.

#![allow(dead_code)] // Each test binary uses part of the harness.

use std::path::{Path, PathBuf};

use multinet_testbed::{CniCall, TestNetns, VethPair};
use serde_json::{Map, Value, json};

/// The master link in every node's host namespace, and its veth peer.
pub const MASTER: &str = "mvm0";
pub const PEER: &str = "mvp0";
pub const REFERENCE_MACVLAN: &str = "/usr/lib/cni/macvlan";
pub const CNI_PATH: &str = "/usr/lib/cni";

/// The versions every verb is exercised in (CHECK only where it exists).
pub const VERSIONS: [&str; 4] = ["0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// One node: host namespace with the master, and a container namespace.
pub struct Node {
    pub host: TestNetns,
    pub container: TestNetns,
    _veth: VethPair,
    pub data: PathBuf,
}

/// One plugin invocation's outcome.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub exit: i32,
    pub stdout: Value,
    pub stderr: String,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.exit == 0
    }

    /// The CNI error code, when the call failed with an error JSON.
    pub fn code(&self) -> Option<u64> {
        (!self.ok()).then(|| self.stdout["code"].as_u64()).flatten()
    }

    pub fn msg(&self) -> String {
        self.stdout["msg"].as_str().unwrap_or_default().to_owned()
    }

    #[track_caller]
    pub fn expect_ok(&self, what: &str) -> &Value {
        assert!(self.ok(), "{what} failed: {} {}", self.stdout, self.stderr);
        &self.stdout
    }
}

/// The environment of one call besides the verb.
#[derive(Debug, Clone)]
pub struct Call {
    pub id: String,
    pub ifname: String,
    pub args: Option<String>,
    /// CNI_NETNS; None = the node's container.
    pub netns: Option<String>,
}

impl Call {
    pub fn new(id: &str) -> Call {
        Call {
            id: id.to_owned(),
            ifname: "eth0".to_owned(),
            args: None,
            netns: None,
        }
    }
}

impl Node {
    pub fn new() -> Node {
        let host = TestNetns::new();
        let container = TestNetns::new();
        let veth = VethPair::new(Some(&host), MASTER, Some(&host), PEER);
        for l in [MASTER, PEER] {
            host.ip(&["link", "set", l, "up"]);
        }
        host.ip(&["addr", "add", "192.0.2.1/24", "dev", MASTER]);
        host.ip(&[
            "route",
            "add",
            "default",
            "via",
            "192.0.2.254",
            "dev",
            MASTER,
        ]);
        let data = std::env::temp_dir().join(format!("multinet-mv-{}", container.name()));
        Node {
            host,
            container,
            _veth: veth,
            data,
        }
    }

    pub fn container_path(&self) -> String {
        self.container.path_str().to_owned()
    }

    /// The config with this node's host-local dataDir put in, unless it names one (the only
    /// difference between what two nodes are given).
    pub fn localise(&self, conf: &Value) -> Value {
        let mut conf = conf.clone();
        if conf["ipam"]["type"] == "host-local" && conf["ipam"].get("dataDir").is_none() {
            conf["ipam"]["dataDir"] = json!(self.data.display().to_string());
        }
        conf
    }

    /// The call of `plugin verb` from inside the host namespace with `conf` on stdin.
    pub fn call(&self, plugin: &Path, verb: &str, conf: &Value, call: &Call) -> CniCall {
        let netns = call.netns.clone().unwrap_or_else(|| self.container_path());
        let cni = CniCall::new(plugin, verb)
            .in_netns(&self.host)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .container_id(&call.id)
            .netns(netns)
            .ifname(&call.ifname)
            .path(CNI_PATH)
            .stdin_json(&self.localise(conf));
        match &call.args {
            Some(a) => cni.args(a),
            None => cni,
        }
    }

    /// Runs `plugin verb` from inside the host namespace with `conf` on stdin.
    pub fn run(&self, plugin: &Path, verb: &str, conf: &Value, call: &Call) -> Outcome {
        let out = self.call(plugin, verb, conf, call).run();
        Outcome {
            exit: out.code(),
            stdout: out.json(),
            stderr: out.stderr,
        }
    }

    /// Link names in the node's host namespace.
    pub fn host_links(&self) -> Vec<String> {
        link_names(&self.host)
    }

    /// Link names in the container.
    pub fn container_links(&self) -> Vec<String> {
        link_names(&self.container)
    }

    /// Addresses host-local has on record for network `name` in this node's dataDir.
    pub fn allocated(&self, name: &str) -> Vec<String> {
        let dir = self.data.join(name);
        let mut ips: Vec<String> = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
                    .collect()
            })
            .unwrap_or_default();
        ips.sort();
        ips
    }

    /// The container's links, addresses and routes, normalised so that two nodes given the
    /// same config compare equal: indexes, namespace ids, random MACs (and the link-local
    /// addresses derived from them), lifetimes and counters are left out.
    pub fn snapshot(&self, keep_mac: bool) -> Value {
        let c = &self.container;
        let mut links = Vec::new();
        for mut l in array(c.ip_json(&["-d", "link", "show"])) {
            strip(
                &mut l,
                &[
                    "ifindex",
                    "link_index",
                    "link_netnsid",
                    "stats",
                    "stats64",
                    "txqlen",
                    "broadcast",
                ],
            );
            if !keep_mac && l["ifname"] != "lo" {
                strip(&mut l, &["address"]);
            }
            // multinet tags the links it makes (the reference does not): only that alias is
            // left out, any other alias still counts as a difference.
            if l["ifalias"]
                .as_str()
                .is_some_and(multinet_netlink::is_multinet_tag)
            {
                strip(&mut l, &["ifalias"]);
            }
            links.push(l);
        }
        let mut addrs = Vec::new();
        for l in array(c.ip_json(&["addr", "show"])) {
            let mut infos: Vec<Value> = array(l["addr_info"].clone())
                .into_iter()
                .map(|mut a| {
                    strip(
                        &mut a,
                        &["valid_life_time", "preferred_life_time", "tentative"],
                    );
                    if a["local"].as_str().is_some_and(|s| s.starts_with("fe80:")) {
                        a["local"] = json!("fe80::(from MAC)");
                    }
                    a
                })
                .collect();
            infos.sort_by_key(|a| a.to_string());
            addrs.push(json!({"ifname": l["ifname"], "addr_info": infos}));
        }
        let mut routes = Vec::new();
        for fam in ["-4", "-6"] {
            for mut r in array(c.ip_json(&[fam, "route", "show", "table", "all"])) {
                if r["dst"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("fe80:") && s != "fe80::/64")
                {
                    r["dst"] = json!("fe80::(from MAC)");
                }
                strip(&mut r, &["expires"]);
                routes.push(r);
            }
        }
        routes.sort_by_key(|r| r.to_string());
        json!({"links": links, "addrs": addrs, "routes": routes})
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // The namespaces and links go with their own guards; the IPAM store is ours to remove.
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

fn link_names(ns: &TestNetns) -> Vec<String> {
    let mut names: Vec<String> = array(ns.ip_json(&["link", "show"]))
        .iter()
        .filter_map(|l| l["ifname"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

pub fn array(v: Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a,
        _ => Vec::new(),
    }
}

fn strip(v: &mut Value, keys: &[&str]) {
    if let Some(m) = v.as_object_mut() {
        for k in keys {
            m.remove(*k);
        }
    }
}

/// A result with what legitimately differs between two nodes replaced by placeholders: the
/// sandbox path, random MACs (unless `keep_mac`), and the version string when asked.
pub fn normalise_result(
    result: &Value,
    sandbox: &str,
    keep_mac: bool,
    drop_version: bool,
) -> Value {
    let mut r = result.clone();
    if let Some(ifaces) = r.get_mut("interfaces").and_then(Value::as_array_mut) {
        for i in ifaces {
            if i["sandbox"] == sandbox {
                i["sandbox"] = json!("(sandbox)");
            }
            if !keep_mac && i.get("mac").is_some() {
                i["mac"] = json!("(mac)");
            }
        }
    }
    if drop_version && let Some(m) = r.as_object_mut() {
        m.remove("cniVersion");
    }
    r
}

/// The base macvlan config of a test network.
pub fn conf(version: &str, name: &str, extra: Value) -> Value {
    conf_of("macvlan", version, name, extra)
}

/// The base config of a test network for plugin `plugin_type`.
pub fn conf_of(plugin_type: &str, version: &str, name: &str, extra: Value) -> Value {
    let mut c = Map::new();
    c.insert("cniVersion".into(), json!(version));
    c.insert("name".into(), json!(name));
    c.insert("type".into(), json!(plugin_type));
    if let Value::Object(m) = extra {
        c.extend(m);
    }
    Value::Object(c)
}

/// `conf` with a prevResult, as a runtime sends it for CHECK and DEL.
pub fn with_prev(conf: &Value, prev: &Value) -> Value {
    let mut c = conf.clone();
    c["prevResult"] = prev.clone();
    c
}

/// One row of the table.
pub struct Row {
    pub name: &'static str,
    pub verb: &'static str,
    pub extra: Value,
    pub code: u64,
    /// Text the message must contain: the key or variable at fault.
    pub names: &'static str,
    pub args: Option<&'static str>,
    pub netns: Option<&'static str>,
    /// Run in the node before the call (ip -n <host> ...), e.g. to plant a duplicate address.
    pub host_setup: &'static [&'static [&'static str]],
    /// Links made in the container before the call.
    pub pre_links: &'static [&'static str],
    /// Addresses host-local has already given to another container.
    pub pre_allocated: &'static [&'static str],
}

pub fn row(name: &'static str, extra: Value, code: u64, names: &'static str) -> Row {
    Row {
        name,
        verb: "ADD",
        extra,
        code,
        names,
        args: None,
        netns: None,
        host_setup: &[],
        pre_links: &[],
        pre_allocated: &[],
    }
}

/// Runs every row at `version` through `plugin` and checks code, message and leftovers.
pub fn run_table(plugin: &std::path::Path, plugin_type: &str, version: &str, rows: Vec<Row>) {
    for r in rows {
        if r.verb == "CHECK" && version == "0.3.1" {
            continue;
        }
        let ctx = format!("[{plugin_type} {version} {}]", r.name);
        let node = Node::new();
        for cmd in r.host_setup {
            node.host.ip(cmd);
        }
        for l in r.pre_links {
            node.container.add_veth(l, &format!("{l}p"), None);
        }
        for ip in r.pre_allocated {
            let dir = node.data.join(r.name);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(ip), "someone-else\r\neth9").unwrap();
        }
        let container_before = node.container_links();
        let host_before = node.host_links();
        let allocated_before = node.allocated(r.name);
        let c = conf_of(plugin_type, version, r.name, r.extra.clone());
        let mut call = Call::new("bad");
        call.args = r.args.map(str::to_owned);
        call.netns = r.netns.map(str::to_owned);
        let out = node.run(plugin, r.verb, &c, &call);
        eprintln!("{ctx} -> {}", out.stdout);
        assert_eq!(out.code(), Some(r.code), "{ctx} {out:?}");
        assert!(
            out.msg().contains(r.names),
            "{ctx} message {:?} does not name {:?}",
            out.msg(),
            r.names
        );
        assert_eq!(
            out.stdout["cniVersion"], version,
            "{ctx} error JSON version"
        );
        assert_eq!(
            node.container_links(),
            container_before,
            "{ctx} left a link in the container"
        );
        assert_eq!(
            node.host_links(),
            host_before,
            "{ctx} left a link in the host"
        );
        assert_eq!(
            node.allocated(r.name),
            allocated_before,
            "{ctx} left an address allocated"
        );
    }
}
