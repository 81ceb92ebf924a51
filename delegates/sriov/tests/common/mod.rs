//! A fake SR-IOV node for the delegate's tests: a "host" network namespace standing in for the
//! node (the plugin runs inside it, never in the real host), a veth standing in for the PF, VF
//! netdevs that are veth ends (their peers in a "wire" namespace, so moving a VF does not drag
//! its peer along), a fake sysfs naming them, and private state, device-info and IPAM dirs.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use multinet_netlink::{Netns, run_in_netns};
use multinet_sriov::plugin::Paths;
use multinet_sriov::{PciAddress, SriovPlugin, StateDir, Sysfs};
use multinet_testbed::sysfs::{FakeSysfs, PfSpec, SysfsLayout};
use multinet_testbed::{CniCall, TestNetns, unique_link_name};
use serde_json::{Value, json};

pub const PF_ADDR: &str = "0000:af:00.0";
pub const PF2_ADDR: &str = "0000:b0:00.0";
pub const PLAIN_ADDR: &str = "0000:05:00.0";

/// The PCI address of VF `n` of the first PF.
pub fn vf_addr(n: usize) -> String {
    format!("0000:af:{:02x}.{}", 2 + n / 8, n % 8)
}

/// The answer of one CNI call.
#[derive(Debug)]
pub struct Answer {
    pub code: i32,
    pub out: Value,
}

impl Answer {
    pub fn ok(&self) -> &Value {
        assert_eq!(self.code, 0, "CNI call failed: {}", self.out);
        &self.out
    }

    /// (CNI error code, message) of a failed call.
    pub fn err(&self) -> (u64, String) {
        assert_ne!(
            self.code, 0,
            "CNI call unexpectedly succeeded: {}",
            self.out
        );
        (
            self.out["code"].as_u64().unwrap_or(0),
            self.out["msg"].as_str().unwrap_or("").to_owned(),
        )
    }
}

pub struct Lab {
    pub host: TestNetns,
    pub wire: TestNetns,
    pub pf: String,
    pub pf2: String,
    /// (PCI address, netdev) of each kernel VF of the first PF.
    pub vfs: Vec<(String, String)>,
    /// The VF of the second PF.
    pub pf2_vf: (String, String),
    pub sysfs: FakeSysfs,
    pub dir: tempfile::TempDir,
    pub plugin: SriovPlugin,
    /// The plugin's log: a NAD's logFile may only name a file under /var/log/.
    pub log_file: PathBuf,
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.log_file);
    }
}

impl Lab {
    /// `n` kernel VFs on PF 1 (plus a vfio-pci VF at `vf_addr(n)` when `dpdk`), one VF on PF 2,
    /// and a plain PCI NIC.
    pub fn new(layout: SysfsLayout, n: usize, dpdk: bool) -> Lab {
        Lab::with_pf(layout, n, dpdk, None)
    }

    /// Like [`Lab::new`], with `real_pf` (a link in the test process's netns, e.g. a
    /// netdevsim PF in the kernel lab) moved into the lab's host netns as PF 1.
    pub fn with_pf(layout: SysfsLayout, n: usize, dpdk: bool, real_pf: Option<&str>) -> Lab {
        let host = TestNetns::new();
        let wire = TestNetns::new();
        let pf2 = unique_link_name("pf");
        let pf = match real_pf {
            Some(name) => {
                multinet_testbed::host_ip(&["link", "set", name, "netns", host.name()]);
                name.to_owned()
            }
            None => unique_link_name("pf"),
        };
        for p in [&pf, &pf2] {
            if real_pf == Some(p.as_str()) {
                continue;
            }
            let peer = unique_link_name("pfp");
            host.add_veth(p, &peer, Some(&wire));
        }
        let mut spec = PfSpec::new(PF_ADDR, &pf);
        let mut vfs = Vec::new();
        for i in 0..n {
            let name = unique_link_name("vf");
            let peer = unique_link_name("vfp");
            host.add_veth(&name, &peer, Some(&wire));
            spec = spec.vf(&vf_addr(i), &name);
            vfs.push((vf_addr(i), name));
        }
        if dpdk {
            spec = spec.vf_dpdk(&vf_addr(n));
        }
        let pf2_vf_name = unique_link_name("vf");
        let peer = unique_link_name("vfp");
        host.add_veth(&pf2_vf_name, &peer, Some(&wire));
        let plain = unique_link_name("nic");
        host.add_veth(&plain, &unique_link_name("nicp"), Some(&wire));
        let sysfs = FakeSysfs::builder(layout)
            .pf(spec)
            .pf(PfSpec::new(PF2_ADDR, &pf2).vf("0000:b0:02.0", &pf2_vf_name))
            .plain_device(PLAIN_ADDR, Some(&plain), None)
            .build();
        let dir = tempfile::tempdir().unwrap();
        let plugin = SriovPlugin::with_paths(Paths {
            sysfs: Sysfs::new(sysfs.root()),
            state: StateDir::new(dir.path().join("state")),
            devinfo_dir: dir.path().join("devinfo"),
            lock_timeout: Duration::from_secs(10),
        });
        let log_file = PathBuf::from(format!(
            "/var/log/multinet-sriov-test-{}.log",
            dir.path().file_name().unwrap().to_string_lossy()
        ));
        Lab {
            host,
            wire,
            pf,
            pf2,
            vfs,
            pf2_vf: ("0000:b0:02.0".to_owned(), pf2_vf_name),
            sysfs,
            dir,
            plugin,
            log_file,
        }
    }

    /// What the plugin logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn state(&self) -> StateDir {
        StateDir::new(self.state_dir())
    }

    pub fn ipam_dir(&self) -> PathBuf {
        self.dir.path().join("ipam")
    }

    /// A network config for `device_id` with host-local IPAM in the lab's own dataDir.
    pub fn conf(&self, device_id: &str, extra: Value) -> Value {
        let mut c = json!({
            "cniVersion": "1.0.0",
            "name": "sriov-net",
            "type": "sriov",
            "deviceID": device_id,
            "logFile": self.log_file,
            "ipam": {
                "type": "host-local",
                "subnet": "10.56.217.0/24",
                "dataDir": self.ipam_dir(),
            },
        });
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    }

    /// One CNI call of the `sriov` binary as a runtime makes it (before the lab's own paths).
    pub fn cni(&self, cmd: &str, cid: &str, netns: &str, ifname: &str) -> CniCall {
        CniCall::new(env!("CARGO_BIN_EXE_sriov"), cmd)
            .container_id(cid)
            .netns(netns)
            .ifname(ifname)
            .path("/usr/lib/cni")
    }

    /// Runs one CNI call of the plugin, in-process, on a thread inside the lab's host netns.
    pub fn call(&self, cmd: &str, cid: &str, netns: &str, ifname: &str, conf: &Value) -> Answer {
        self.run(&self.cni(cmd, cid, netns, ifname), conf)
    }

    /// Runs `call` (made with [`Lab::cni`]) in-process, like [`Lab::call`].
    pub fn run(&self, call: &CniCall, conf: &Value) -> Answer {
        let vars = call.vars();
        let stdin = serde_json::to_vec(conf).unwrap();
        let host = Netns::open(self.host.path()).unwrap();
        let (out, code) = run_in_netns(&host, || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(multinet_cni::dispatch(&self.plugin, vars, &stdin))
        })
        .unwrap();
        let out = if out.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&out).unwrap()
        };
        Answer { code, out }
    }

    pub fn add(&self, cid: &str, pod: &TestNetns, ifname: &str, conf: &Value) -> Answer {
        self.call("ADD", cid, pod.path_str(), ifname, conf)
    }

    pub fn del(&self, cid: &str, netns: &str, ifname: &str, conf: &Value) -> Answer {
        self.call("DEL", cid, netns, ifname, conf)
    }

    /// `ip -j -d link show dev NAME` in the host netns, or None when absent.
    pub fn host_link(&self, name: &str) -> Option<Value> {
        link_in(&self.host, name)
    }

    /// Files under the state dir, relative to it, besides the VFs' lock files (which stay).
    pub fn stray_state_files(&self) -> Vec<PathBuf> {
        files_under(&self.state_dir())
            .into_iter()
            .filter(|f| !f.starts_with("pci/vf_lock"))
            .collect()
    }

    /// Files of IPAM allocations (host-local's dataDir minus its lock and last-reserved files).
    pub fn ipam_allocations(&self) -> Vec<PathBuf> {
        files_under(&self.ipam_dir())
            .into_iter()
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy();
                name != "lock" && !name.starts_with("last_reserved_ip")
            })
            .collect()
    }

    pub fn pci(&self, s: &str) -> PciAddress {
        s.parse().unwrap()
    }
}

/// `ip -j -d link show dev NAME` in `ns`, or None when absent.
pub fn link_in(ns: &TestNetns, name: &str) -> Option<Value> {
    if !ns.has_link(name) {
        return None;
    }
    Some(ns.ip_json(&["-d", "link", "show", "dev", name])[0].clone())
}

/// Every regular file below `dir`, relative to it, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}
