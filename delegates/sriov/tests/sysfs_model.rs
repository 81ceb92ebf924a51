//! The sysfs model and the allocator on fake trees in both reference layouts (no root needed).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use multinet_sriov::selector::PoolSpec;
use multinet_sriov::{
    AllocationRecord, DeviceTable, Owner, PciAddress, SriovError, StateDir, Sysfs, VfAllocator,
    list_devices,
};
use multinet_testbed::sysfs::{FakeSysfs, PfSpec, SysfsLayout};
use serde_json::json;

const LAYOUTS: [SysfsLayout; 2] = [SysfsLayout::SriovCni, SysfsLayout::DevicePlugin];

fn pci(s: &str) -> PciAddress {
    s.parse().unwrap()
}

fn node(layout: SysfsLayout) -> FakeSysfs {
    FakeSysfs::builder(layout)
        .pf(PfSpec::new("0000:af:00.1", "enp175s0f1")
            .vf("0000:af:06.0", "enp175s6")
            .vf("0000:af:06.1", "enp175s7")
            .vf_dpdk("0000:af:06.2"))
        .pf(PfSpec::new("0000:3b:00.0", "ens2f0")
            .ids(0x15b3, 0x1017, 0x1018)
            .vf("0000:3b:00.2", "ens2f0v0"))
        .plain_device("0000:05:00.0", Some("ens1"), Some(0))
        .build()
}

fn key_of(e: SriovError) -> String {
    match e {
        SriovError::Config { key, .. } => key,
        other => panic!("expected a config error, got {other}"),
    }
}

#[test]
fn vfs_resolve_in_both_layouts() {
    for layout in LAYOUTS {
        let fake = node(layout);
        let sysfs = Sysfs::new(fake.root());
        let vf = sysfs.vf(&pci("0000:af:06.1")).unwrap();
        assert_eq!(vf.pf, pci("0000:af:00.1"), "{layout:?}");
        assert_eq!(vf.index, 1);
        assert_eq!(vf.pf_netdev.as_deref(), Some("enp175s0f1"));
        assert_eq!(vf.netdev.as_deref(), Some("enp175s7"));
        assert_eq!(vf.driver.as_deref(), Some("iavf"));
        assert_eq!(vf.numa_node, Some(0));
        assert_eq!(vf.link_type.as_deref(), Some("ether"));
        assert!(vf.iommu_group.is_some());
        assert_eq!(vf.ids.vendor_name(), Some("Intel Corporation"));
        assert!(!vf.is_dpdk());

        let dpdk = sysfs.vf(&pci("0000:af:06.2")).unwrap();
        assert!(dpdk.is_dpdk(), "{layout:?}");
        assert_eq!(dpdk.netdev, None);
        assert_eq!(dpdk.index, 2);

        let mlx = sysfs.vf(&pci("0000:3b:00.2")).unwrap();
        assert_eq!(mlx.ids.vendor_name(), Some("Mellanox Technologies"));

        // Not VFs: a PF, a plain NIC, nothing at all. All name deviceID.
        let pf_err = sysfs.vf(&pci("0000:af:00.1")).unwrap_err();
        assert!(pf_err.to_string().contains("PF with 3 VFs"), "{pf_err}");
        assert_eq!(key_of(pf_err), "deviceID");
        assert_eq!(
            key_of(sysfs.vf(&pci("0000:05:00.0")).unwrap_err()),
            "deviceID"
        );
        let missing = sysfs.vf(&pci("0000:ee:00.0")).unwrap_err();
        assert!(missing.to_string().contains("no PCI device"), "{missing}");

        let pfs = sysfs.pfs();
        let addrs: Vec<String> = pfs.iter().map(|p| p.addr().to_string()).collect();
        assert_eq!(
            addrs,
            ["0000:05:00.0", "0000:3b:00.0", "0000:af:00.1"],
            "{layout:?}"
        );
        assert_eq!(pfs[2].vfs.len(), 3);
    }
}

#[test]
fn the_reference_fixture_without_extras_still_resolves() {
    let fake = FakeSysfs::builder(SysfsLayout::SriovCni)
        .minimal()
        .pf(PfSpec::new("0000:af:00.1", "enp175s0f1")
            .vf("0000:af:06.0", "enp175s6")
            .vf("0000:af:06.1", "enp175s7"))
        .build();
    let sysfs = Sysfs::new(fake.root());
    let vf = sysfs.vf(&pci("0000:af:06.1")).unwrap();
    assert_eq!((vf.index, vf.netdev.as_deref()), (1, Some("enp175s7")));
    assert_eq!(vf.driver, None);
    assert_eq!(vf.ids.describe(), "unknown device");
    assert_eq!(sysfs.netdev_pci("enp175s6"), Some(pci("0000:af:06.0")));
}

#[test]
fn a_vf_beyond_sriov_numvfs_is_not_a_vf() {
    let fake = node(SysfsLayout::DevicePlugin);
    std::fs::write(fake.device_dir("0000:af:00.1").join("sriov_numvfs"), "1").unwrap();
    let sysfs = Sysfs::new(fake.root());
    assert_eq!(sysfs.vf(&pci("0000:af:06.0")).unwrap().index, 0);
    let err = sysfs.vf(&pci("0000:af:06.1")).unwrap_err();
    assert!(err.to_string().contains("lists no virtfn"), "{err}");
}

#[test]
fn listing_shows_pfs_vfs_drivers_and_owners() {
    let fake = node(SysfsLayout::SriovCni);
    let tmp = tempfile::tempdir().unwrap();
    let state = StateDir::new(tmp.path());
    let lock = state.try_lock_vf(&pci("0000:af:06.0")).unwrap().unwrap();
    let rec = AllocationRecord::new(pci("0000:af:06.0"), "pod-a", "net1", "/proc/self/ns/net");
    state.write_record(&lock, &rec).unwrap();
    let rows = list_devices(&Sysfs::new(fake.root()), &state);
    assert_eq!(rows.len(), 3 + 3 + 1, "3 PFs (one with SR-IOV off), 4 VFs");
    let vf0 = rows
        .iter()
        .find(|r| r.vf == Some(pci("0000:af:06.0")))
        .unwrap();
    assert_eq!(vf0.owner.as_deref(), Some("pod-a/net1"));
    assert_eq!(vf0.netdev.as_deref(), Some("enp175s6"));
    let table = DeviceTable(&rows).to_string();
    assert!(table.lines().next().unwrap().starts_with("PCI"), "{table}");
    assert!(table.contains("PF 3/64"), "{table}");
    assert!(table.contains("vfio-pci"), "{table}");
    assert!(
        table.contains("Ethernet Virtual Function 700 Series"),
        "{table}"
    );
    assert!(table.contains("pod-a/net1"), "{table}");
}

fn owner(cid: &str, netns: &str) -> Owner {
    Owner {
        container_id: cid.into(),
        ifname: "net1".into(),
        netns: netns.into(),
        pod: None,
        pod_uid: None,
    }
}

#[test]
fn allocator_claims_reclaims_and_refuses() {
    let fake = node(SysfsLayout::DevicePlugin);
    let sysfs = Sysfs::new(fake.root());
    let tmp = tempfile::tempdir().unwrap();
    let state = StateDir::new(tmp.path());
    let alloc = VfAllocator::new(&sysfs, &state);
    let pool = PoolSpec::from_value(
        "pool",
        &json!({"name": "intel", "vendors": ["8086"], "drivers": ["iavf"]}),
    )
    .unwrap();
    let members: Vec<String> = alloc
        .pool_members(&pool)
        .iter()
        .map(|v| v.addr.to_string())
        .collect();
    assert_eq!(members, ["0000:af:06.0", "0000:af:06.1"]);
    let usage = |free, used, stale| multinet_sriov::PoolUsage { free, used, stale };
    assert_eq!(alloc.pool_usage(&pool), usage(2, 0, 0));

    // A live owner (this process's netns) and a stale one (a netns path that is gone).
    let live = "/proc/self/ns/net";
    let a = alloc.claim_from_pool(&pool, &owner("a", live)).unwrap();
    assert_eq!(a.vf.addr, pci("0000:af:06.0"));
    drop(a);
    let b = alloc
        .claim_from_pool(&pool, &owner("b", "/run/netns/gone-pod"))
        .unwrap();
    assert_eq!(b.vf.addr, pci("0000:af:06.1"));
    drop(b);
    assert_eq!(alloc.pool_usage(&pool), usage(0, 1, 1));
    // a holds 06.0 (live); b's record is stale: c gets 06.1 and says whose it was.
    let c = alloc.claim_from_pool(&pool, &owner("c", live)).unwrap();
    assert_eq!(c.vf.addr, pci("0000:af:06.1"));
    let (old, why) = c.reclaimed.clone().unwrap();
    assert_eq!(old.container_id, "b");
    assert!(why.contains("no longer exists"), "{why}");
    drop(c);
    assert_eq!(alloc.pool_usage(&pool), usage(0, 2, 0));
    // Everything live now: code 11 naming the pool.
    let err = alloc.claim_from_pool(&pool, &owner("d", live)).unwrap_err();
    assert_eq!(err.code().code(), 11);
    assert!(err.to_string().contains("\"intel\""), "{err}");
    // A given deviceID held by a live owner is refused, naming the deviceID.
    let vf = sysfs.vf(&pci("0000:af:06.0")).unwrap();
    let err = alloc
        .claim_device(vf.clone(), &owner("d", live), None)
        .unwrap_err();
    assert_eq!(err.code().code(), 11);
    assert!(
        err.to_string()
            .contains("deviceID 0000:af:06.0 is in use by another container"),
        "{err}"
    );
    // The owner itself may claim again (idempotent), and release frees it.
    let again = alloc
        .claim_device(vf.clone(), &owner("a", live), None)
        .unwrap();
    assert!(
        alloc
            .release(&again.lock, &owner("not-a", live))
            .is_ok_and(|r| !r)
    );
    assert!(alloc.release(&again.lock, &owner("a", live)).unwrap());
    drop(again);
    assert!(alloc.claim_device(vf, &owner("d", live), None).is_ok());
    // A pool that selects nothing is empty: code 11 too.
    let none = PoolSpec::from_value("pool", &json!({"name": "none", "vendors": ["abcd"]})).unwrap();
    let err = alloc.claim_from_pool(&none, &owner("e", live)).unwrap_err();
    assert_eq!(err.code().code(), 11);
    assert!(
        err.to_string().contains("no VF on this node matches"),
        "{err}"
    );
}

#[test]
fn pool_claims_prefer_the_pods_devices_topology() {
    use multinet_sriov::topology::TopologyHint;
    let fake = FakeSysfs::builder(SysfsLayout::SriovCni)
        .pf(PfSpec::new("0000:af:00.1", "enp175s0f1")
            .vf("0000:af:06.0", "enp175s6")
            .vf("0000:af:06.1", "enp175s7"))
        .build();
    // VF 0 on NUMA node 0, VF 1 on node 1.
    for (addr, numa) in [("0000:af:06.0", "0"), ("0000:af:06.1", "1")] {
        std::fs::write(fake.device_dir(addr).join("numa_node"), numa).unwrap();
    }
    let sysfs = Sysfs::new(fake.root());
    let vf = sysfs.vf(&pci("0000:af:06.1")).unwrap();
    // The SR-IOV CNI layout keeps devices under devices/pci0000:00/...
    assert_eq!(vf.pcie_root.as_deref(), Some("pci0000:00"));
    assert_eq!(vf.numa_node, Some(1));
    let tmp = tempfile::tempdir().unwrap();
    let state = StateDir::new(tmp.path());
    let pool =
        PoolSpec::from_value("pool", &json!({"name": "p", "pfNames": ["enp175s0f1"]})).unwrap();
    let pick = |hint: TopologyHint| {
        let claim = VfAllocator::new(&sysfs, &state)
            .preferring(hint)
            .claim_from_pool(&pool, &owner("c", "/proc/self/ns/net"))
            .unwrap();
        let addr = claim.vf.addr;
        VfAllocator::new(&sysfs, &state)
            .release(&claim.lock, &owner("c", "/proc/self/ns/net"))
            .unwrap();
        addr
    };
    // No hint: the lowest address.
    assert_eq!(pick(TopologyHint::default()), pci("0000:af:06.0"));
    // The pod's GPU is on NUMA node 1: VF 1.
    let numa1 = TopologyHint {
        numa_nodes: vec![1],
        pcie_roots: vec![],
    };
    assert_eq!(pick(numa1.clone()), pci("0000:af:06.1"));
    assert!(numa1.explain(&vf).contains("NUMA node 1"));
    // A shared PCIe root wins over NUMA: both VFs share it, so the order among them stands.
    let root = TopologyHint {
        numa_nodes: vec![1],
        pcie_roots: vec!["pci0000:00".into()],
    };
    assert_eq!(pick(root.clone()), pci("0000:af:06.0"));
    assert!(root.explain(&vf).contains("PCIe root pci0000:00"));
    // Nothing near: still a VF, and the log says why it is not near.
    let far = TopologyHint {
        numa_nodes: vec![7],
        pcie_roots: vec!["pci0000:80".into()],
    };
    assert_eq!(pick(far.clone()), pci("0000:af:06.0"));
    assert!(far.explain(&vf).contains("no free VF shares"));
    // The device-plugin layout has no devices/ tree: the root is unknown, not guessed.
    let flat = node(SysfsLayout::DevicePlugin);
    let flat_vf = Sysfs::new(flat.root()).vf(&pci("0000:af:06.0")).unwrap();
    assert_eq!(flat_vf.pcie_root, None);
}
