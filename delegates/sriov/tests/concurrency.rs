//! 100 pool ADDs from 8 threads over 8 VFs (each thread wants two VFs at once, so the pool runs
//! dry): never two owners of one VF at any instant (checked under the VF's lock), every VF
//! released after DEL, stale records (netns deleted) reclaimed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::Lab;
use multinet_sriov::AllocationRecord;
use multinet_testbed::sysfs::SysfsLayout;
use multinet_testbed::{TestNetns, require_root};
use serde_json::json;

const THREADS: usize = 8;
const VFS: usize = 8;
const ADDS: usize = 100;

#[test]
fn contended_pool_never_has_two_owners() {
    require_root!();
    let lab = Lab::new(SysfsLayout::DevicePlugin, VFS, false);
    let state = lab.state();

    // Three VFs carry records of pods whose netns is gone: they must be reclaimed.
    let stale_vfs: BTreeSet<String> = lab.vfs[..3].iter().map(|(a, _)| a.clone()).collect();
    for addr in &stale_vfs {
        let gone = TestNetns::new();
        let lock = state.try_lock_vf(&lab.pci(addr)).unwrap().unwrap();
        let rec = AllocationRecord::new(lab.pci(addr), "dead-pod", "net1", gone.path_str());
        state.write_record(&lock, &rec).unwrap();
        drop(gone);
        assert!(rec.stale_reason().is_some());
    }

    let pool = json!({"name": "contended", "pfNames": [lab.pf.clone()]});
    let conf = lab.conf("", json!({"deviceID": null, "pool": pool, "ipam": null}));
    let owners: Mutex<HashMap<String, String>> = Mutex::new(HashMap::new());
    let seen: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let attempts = AtomicUsize::new(0);
    let granted = AtomicUsize::new(0);
    let exhausted = AtomicUsize::new(0);

    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (lab, conf, owners, seen) = (&lab, &conf, &owners, &seen);
            let (attempts, granted, exhausted, state) = (&attempts, &granted, &exhausted, &state);
            s.spawn(move || {
                let pod = TestNetns::new();
                let mut round = 0;
                loop {
                    let mut held = Vec::new();
                    for ifname in ["net1", "net2"] {
                        if attempts.fetch_add(1, Ordering::SeqCst) >= ADDS {
                            break;
                        }
                        let cid = format!("t{t}r{round}");
                        let answer = lab.add(&cid, &pod, ifname, conf);
                        if answer.code != 0 {
                            let (code, msg) = answer.err();
                            assert_eq!(code, 11, "{msg}");
                            assert!(msg.contains("\"contended\""), "{msg}");
                            exhausted.fetch_add(1, Ordering::SeqCst);
                            continue;
                        }
                        granted.fetch_add(1, Ordering::SeqCst);
                        let vf = answer.out["interfaces"][0]["pciID"]
                            .as_str()
                            .unwrap()
                            .to_owned();
                        // Under the VF's lock, the record names exactly this attachment...
                        {
                            let _lock = state
                                .lock_vf(&lab.pci(&vf), Duration::from_secs(10))
                                .unwrap();
                            let rec = state.read_record(&lab.pci(&vf)).unwrap().unwrap();
                            assert_eq!(
                                (rec.container_id.as_str(), rec.ifname.as_str()),
                                (cid.as_str(), ifname)
                            );
                        }
                        // ...and no one else holds it right now.
                        let me = format!("{cid}/{ifname}");
                        if let Some(other) = owners.lock().unwrap().insert(vf.clone(), me.clone()) {
                            panic!("VF {vf} owned by {other} and {me} at once");
                        }
                        seen.lock().unwrap().insert(vf.clone());
                        held.push((cid, ifname, vf));
                    }
                    std::thread::sleep(Duration::from_millis(2));
                    for (cid, ifname, vf) in held.drain(..) {
                        owners.lock().unwrap().remove(&vf);
                        lab.del(&cid, pod.path_str(), ifname, conf).ok();
                    }
                    round += 1;
                    if attempts.load(Ordering::SeqCst) >= ADDS {
                        break;
                    }
                }
            });
        }
    });

    let granted = granted.load(Ordering::SeqCst);
    let exhausted = exhausted.load(Ordering::SeqCst);
    eprintln!("{ADDS} ADDs: {granted} granted, {exhausted} refused with code 11 (pool empty)");
    assert_eq!(granted + exhausted, ADDS);
    assert!(granted >= VFS, "only {granted} ADDs succeeded");
    let seen = seen.into_inner().unwrap();
    assert!(
        stale_vfs.is_subset(&seen),
        "stale VFs {stale_vfs:?} not reclaimed; allocated: {seen:?}"
    );
    assert!(
        state.records().is_empty(),
        "records left: {:?}",
        state.records()
    );
    assert!(state.attachments().is_empty());
    for (addr, name) in &lab.vfs {
        assert!(
            lab.host_link(name).is_some(),
            "VF {addr} ({name}) not back in the host"
        );
    }
}
