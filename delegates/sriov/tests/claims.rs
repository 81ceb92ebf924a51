//! DRA claims in the VF allocator (fake sysfs, real state directory and locks, no root needed):
//! a prepared VF is its claim's until unprepared; only a pod the claim is reserved for may attach
//! it; DEL leaves it with the claim; pools never hand it out; and prepares racing pool ADDs over
//! the same VFs never give one VF two holders.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Mutex;

use multinet_sriov::selector::PoolSpec;
use multinet_sriov::state::ClaimHold;
use multinet_sriov::{Owner, PciAddress, SriovError, StateDir, Sysfs, VfAllocator};
use multinet_testbed::sysfs::{FakeSysfs, PfSpec, SysfsLayout};
use serde_json::json;

fn pci(s: &str) -> PciAddress {
    s.parse().unwrap()
}

/// One PF with `n` VFs 0000:af:06.0 ...
fn node(n: usize) -> FakeSysfs {
    let mut pf = PfSpec::new("0000:af:00.1", "enp175s0f1");
    for i in 0..n {
        pf = pf.vf(&format!("0000:af:06.{i}"), &format!("enp175s{i}v"));
    }
    FakeSysfs::builder(SysfsLayout::DevicePlugin).pf(pf).build()
}

fn hold(uid: &str, pods: &[&str]) -> ClaimHold {
    ClaimHold {
        uid: uid.into(),
        namespace: "team".into(),
        name: format!("claim-{uid}"),
        pods: pods.iter().map(|s| s.to_string()).collect(),
    }
}

/// An attachment of container `cid` of pod `pod_uid`, in this process's (live) netns.
fn owner(cid: &str, pod_uid: Option<&str>) -> Owner {
    Owner {
        container_id: cid.into(),
        ifname: "net1".into(),
        netns: "/proc/self/ns/net".into(),
        pod: Some("team/web".into()),
        pod_uid: pod_uid.map(str::to_owned),
    }
}

fn pool() -> PoolSpec {
    PoolSpec::from_value("pool", &json!({"name": "fast", "pfNames": ["enp175s0f1"]})).unwrap()
}

#[test]
fn a_prepared_vf_is_its_claims_until_unprepared() {
    let fake = node(1);
    let sysfs = Sysfs::new(fake.root());
    let tmp = tempfile::tempdir().unwrap();
    let state = StateDir::new(tmp.path());
    let alloc = VfAllocator::new(&sysfs, &state);
    let vf = sysfs.vf(&pci("0000:af:06.0")).unwrap();

    let record = alloc.prepare(&vf, hold("c1", &["pod-a"])).unwrap();
    assert!(!record.is_attached());
    // Preparing again is a no-op; another claim is refused naming the holder.
    alloc.prepare(&vf, hold("c1", &["pod-a"])).unwrap();
    let err = alloc.prepare(&vf, hold("c2", &["pod-b"])).unwrap_err();
    assert!(
        matches!(&err, SriovError::InUse { owner, .. } if owner == "ResourceClaim team/claim-c1"),
        "{err}"
    );
    // A pool has nothing to give.
    let err = alloc
        .claim_from_pool(&pool(), &owner("x", Some("pod-a")))
        .unwrap_err();
    assert!(matches!(err, SriovError::PoolExhausted { .. }), "{err}");
    assert_eq!(alloc.pool_usage(&pool()).used, 1);

    // Another pod, or a runtime naming no pod, may not attach it; the message names no claim.
    for stranger in [owner("b", Some("pod-b")), owner("b", None)] {
        let err = alloc.claim_device(vf.clone(), &stranger, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "deviceID 0000:af:06.0 is in use by a ResourceClaim this pod is not reserved for"
        );
        assert!(
            matches!(&err, SriovError::InUse { owner, .. } if owner == "ResourceClaim team/claim-c1")
        );
    }
    // The claim's pod attaches it; the record keeps the claim.
    let attached = alloc
        .claim_device(vf.clone(), &owner("a", Some("pod-a")), None)
        .unwrap();
    assert!(attached.record.is_attached());
    assert_eq!(attached.record.claim.as_ref().unwrap().uid, "c1");
    // While attached, a second container of the same pod is refused: one VF, one netns.
    let lock = attached.lock;
    drop(lock);
    let err = alloc
        .claim_device(vf.clone(), &owner("a2", Some("pod-a")), None)
        .unwrap_err();
    assert!(
        matches!(&err, SriovError::InUse { owner, .. } if owner.contains("container a ")),
        "{err:?}"
    );

    // DEL: the attachment goes, the claim stays.
    let lock = state
        .lock_vf(&vf.addr, std::time::Duration::from_secs(1))
        .unwrap();
    assert!(alloc.release(&lock, &owner("a", Some("pod-a"))).unwrap());
    drop(lock);
    let left = state.read_record(&vf.addr).unwrap().unwrap();
    assert!(!left.is_attached());
    assert_eq!(left.claim.unwrap().uid, "c1");

    // Unprepare: free again; twice, or for another claim, changes nothing.
    assert!(!alloc.unprepare(&vf.addr, "c2").unwrap());
    assert!(alloc.unprepare(&vf.addr, "c1").unwrap());
    assert!(!alloc.unprepare(&vf.addr, "c1").unwrap());
    assert_eq!(state.read_record(&vf.addr).unwrap(), None);
    alloc.claim_from_pool(&pool(), &owner("x", None)).unwrap();
}

#[test]
fn unprepare_under_a_live_attachment_leaves_the_vf_to_its_del() {
    let fake = node(1);
    let sysfs = Sysfs::new(fake.root());
    let tmp = tempfile::tempdir().unwrap();
    let state = StateDir::new(tmp.path());
    let alloc = VfAllocator::new(&sysfs, &state);
    let vf = sysfs.vf(&pci("0000:af:06.0")).unwrap();
    alloc.prepare(&vf, hold("c1", &["pod-a"])).unwrap();
    drop(
        alloc
            .claim_device(vf.clone(), &owner("a", Some("pod-a")), None)
            .unwrap(),
    );
    assert!(alloc.unprepare(&vf.addr, "c1").unwrap());
    let r = state.read_record(&vf.addr).unwrap().unwrap();
    assert!(r.is_owned_by("a", "net1") && r.claim.is_none());
    // A VF an attachment holds cannot be prepared for a claim.
    let err = alloc.prepare(&vf, hold("c3", &["pod-a"])).unwrap_err();
    assert!(
        matches!(&err, SriovError::InUse { owner, .. } if owner.contains("container a ")),
        "{err:?}"
    );
    let lock = state
        .lock_vf(&vf.addr, std::time::Duration::from_secs(1))
        .unwrap();
    alloc.release(&lock, &owner("a", Some("pod-a"))).unwrap();
    assert_eq!(state.read_record(&vf.addr).unwrap(), None);
}

#[test]
fn a_stale_attachment_of_a_claims_vf_is_replaced_and_the_claim_kept() {
    let fake = node(1);
    let sysfs = Sysfs::new(fake.root());
    let tmp = tempfile::tempdir().unwrap();
    let state = StateDir::new(tmp.path());
    let alloc = VfAllocator::new(&sysfs, &state);
    let vf = sysfs.vf(&pci("0000:af:06.0")).unwrap();
    alloc.prepare(&vf, hold("c1", &["pod-a"])).unwrap();
    let mut gone = owner("old", Some("pod-a"));
    gone.netns = tmp.path().join("no-such-netns").display().to_string();
    drop(alloc.claim_device(vf.clone(), &gone, None).unwrap());
    // The pool still does not take it: the claim holds it.
    assert!(alloc.claim_from_pool(&pool(), &owner("x", None)).is_err());
    assert_eq!(alloc.pool_usage(&pool()).stale, 0);
    // The pod's new sandbox does, keeping the claim.
    let again = alloc
        .claim_device(vf.clone(), &owner("new", Some("pod-a")), None)
        .unwrap();
    assert!(again.reclaimed.is_some());
    assert!(again.record.is_owned_by("new", "net1"));
    assert_eq!(again.record.claim.as_ref().unwrap().uid, "c1");
}

/// Eight threads: four prepare claims over the VFs, four take VFs from the pool, over and over.
/// Whoever wins a VF, nobody else gets it until it is given back.
#[test]
fn prepares_racing_pool_adds_never_give_one_vf_two_holders() {
    const VFS: usize = 6;
    const ROUNDS: usize = 150;
    let fake = node(VFS);
    let sysfs = Sysfs::new(fake.root());
    let tmp = tempfile::tempdir().unwrap();
    let state = StateDir::new(tmp.path());
    let held: Mutex<BTreeSet<PciAddress>> = Mutex::new(BTreeSet::new());
    let grants = std::sync::atomic::AtomicUsize::new(0);
    let take = |vf: PciAddress| {
        assert!(held.lock().unwrap().insert(vf), "VF {vf} given twice");
        grants.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    };
    let give_back = |vf: PciAddress| assert!(held.lock().unwrap().remove(&vf));
    std::thread::scope(|s| {
        for t in 0..8 {
            let (sysfs, state, take, give_back) = (&sysfs, &state, &take, &give_back);
            s.spawn(move || {
                let alloc = VfAllocator::new(sysfs, state);
                for round in 0..ROUNDS {
                    if t % 2 == 0 {
                        let vf = sysfs
                            .vf(&pci(&format!("0000:af:06.{}", (t + round) % VFS)))
                            .unwrap();
                        let uid = format!("claim-{t}-{round}");
                        if alloc.prepare(&vf, hold(&uid, &["p"])).is_ok() {
                            take(vf.addr);
                            give_back(vf.addr);
                            assert!(alloc.unprepare(&vf.addr, &uid).unwrap());
                        }
                    } else {
                        let o = owner(&format!("c{t}-{round}"), None);
                        if let Ok(claim) = alloc.claim_from_pool(&pool(), &o) {
                            let vf = claim.vf.addr;
                            take(vf);
                            give_back(vf);
                            alloc.release(&claim.lock, &o).unwrap();
                        }
                    }
                }
            });
        }
    });
    assert!(
        grants.into_inner() > ROUNDS,
        "too little contention to prove anything"
    );
    assert!(state.records().is_empty(), "{:?}", state.records());
}
