//! 50 parallel ADDs through the built binary, as separate processes, on one range: 50 distinct
//! addresses; after 50 parallel DELs no address file is left.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod common;

use std::collections::BTreeSet;

use common::*;
use serde_json::json;

#[test]
fn fifty_parallel_adds_then_dels_in_every_version() {
    let bin = ours("host-local");
    for v in VERSIONS {
        let dir = tempfile::tempdir().unwrap();
        let conf = json!({"cniVersion": v, "name": "par", "type": "host-local",
                          "ipam": {"type": "host-local", "subnet": "10.80.0.0/26", "dataDir": dir.path()}});
        let ids: Vec<String> = (0..50).map(|i| format!("pod-{i}")).collect();
        let children: Vec<_> = ids
            .iter()
            .map(|id| spawn(&bin, &Call::new("ADD", id), &conf))
            .collect();
        let mut addrs = BTreeSet::new();
        for c in children {
            let o = finish(c);
            assert!(o.ok, "v{v}: {}", o.stdout);
            assert_eq!(o.stdout["cniVersion"], v);
            addrs.insert(o.stdout["ips"][0]["address"].as_str().unwrap().to_string());
        }
        assert_eq!(addrs.len(), 50, "v{v}: {addrs:?}");
        assert!(!addrs.contains("10.80.0.1/26"), "gateway handed out");
        let net = dir.path().join("par");
        assert_eq!(ip_files(&net).len(), 50);
        // Every file names its owner.
        for id in &ids {
            let owners = ip_files(&net)
                .into_iter()
                .filter(|f| {
                    std::fs::read_to_string(net.join(f)).unwrap() == format!("{id}\r\neth0")
                })
                .count();
            assert_eq!(owners, 1, "v{v}: {id}");
        }
        let children: Vec<_> = ids
            .iter()
            .map(|id| spawn(&bin, &Call::new("DEL", id), &conf))
            .collect();
        for c in children {
            let o = finish(c);
            assert!(o.ok, "v{v}: {}", o.stdout);
        }
        assert_eq!(ip_files(&net), Vec::<String>::new(), "v{v}");
    }
}

#[test]
fn range_of_thirteen_under_fifty_parallel_adds() {
    // More callers than addresses: exactly 13 win, the rest get code 11 naming the range.
    let bin = ours("host-local");
    let dir = tempfile::tempdir().unwrap();
    let conf = json!({"cniVersion": "1.1.0", "name": "small", "type": "host-local",
                      "ipam": {"type": "host-local", "subnet": "10.81.0.0/28", "dataDir": dir.path()}});
    let children: Vec<_> = (0..50)
        .map(|i| spawn(&bin, &Call::new("ADD", &format!("p{i}")), &conf))
        .collect();
    let outcomes: Vec<Outcome> = children.into_iter().map(finish).collect();
    let won: BTreeSet<String> = outcomes
        .iter()
        .filter(|o| o.ok)
        .map(|o| o.stdout["ips"][0]["address"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(won.len(), 13, "{won:?}");
    assert_eq!(outcomes.iter().filter(|o| o.ok).count(), 13);
    for o in outcomes.iter().filter(|o| !o.ok) {
        assert_eq!(o.code(), 11, "{}", o.stdout);
        assert!(o.msg().contains("10.81.0.1-10.81.0.14"), "{}", o.msg());
    }
}
