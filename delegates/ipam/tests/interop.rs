//! Ours and the reference host-local on one dataDir: neither hands out what the other holds,
//! each releases what the other allocated, and mixed parallel ADDs never collide.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod common;

use std::collections::BTreeSet;

use common::*;
use serde_json::{Value, json};

fn conf(dir: &std::path::Path, v: &str, subnet: &str) -> Value {
    json!({"cniVersion": v, "name": "shared", "type": "host-local",
           "ipam": {"type": "host-local", "subnet": subnet, "dataDir": dir}})
}

fn address(o: &Outcome) -> String {
    assert!(o.ok, "{}", o.stdout);
    o.stdout["ips"][0]["address"].as_str().unwrap().to_string()
}

#[test]
fn shared_data_dir_in_every_version() {
    let Some(reference) = theirs("host-local") else {
        return;
    };
    let ref_versions = reference_versions(&reference);
    let ours = ours("host-local");
    for v in VERSIONS {
        let rv = reference_version(&ref_versions, v);
        let dir = tempfile::tempdir().unwrap();
        let net = dir.path().join("shared");
        let our_conf = conf(dir.path(), v, "10.70.0.0/28");
        let ref_conf = conf(dir.path(), &rv, "10.70.0.0/28");

        let mut seen = BTreeSet::new();
        for i in 0..5 {
            let a = address(&run(
                &reference,
                &Call::new("ADD", &format!("ref{i}")),
                &ref_conf,
            ));
            assert!(seen.insert(a));
        }
        for i in 0..5 {
            let a = address(&run(
                &ours,
                &Call::new("ADD", &format!("our{i}")),
                &our_conf,
            ));
            assert!(
                seen.insert(a.clone()),
                "v{v}: ours handed out {a}, held by the reference"
            );
        }
        // Ours continues the reference's round robin.
        assert!(seen.contains("10.70.0.11/28"), "v{v}: {seen:?}");
        for i in 0..3 {
            let a = address(&run(
                &reference,
                &Call::new("ADD", &format!("ref-more{i}")),
                &ref_conf,
            ));
            assert!(
                seen.insert(a.clone()),
                "v{v}: reference handed out {a}, held by ours"
            );
        }
        // .1 is the gateway, .15 the broadcast: 13 addresses, all taken → full for both.
        assert!(!run(&ours, &Call::new("ADD", "x"), &our_conf).ok);
        assert!(!run(&reference, &Call::new("ADD", "x"), &ref_conf).ok);
        assert_eq!(ip_files(&net).len(), 13, "v{v}");

        // Each releases the other's.
        for i in 0..5 {
            assert!(run(&reference, &Call::new("DEL", &format!("our{i}")), &ref_conf).ok);
            assert!(run(&ours, &Call::new("DEL", &format!("ref{i}")), &our_conf).ok);
        }
        for i in 0..3 {
            assert!(run(&ours, &Call::new("DEL", &format!("ref-more{i}")), &our_conf).ok);
        }
        assert_eq!(ip_files(&net), Vec::<String>::new(), "v{v}");
    }
}

#[test]
fn mixed_parallel_adds_never_collide() {
    let Some(reference) = theirs("host-local") else {
        return;
    };
    let ours = ours("host-local");
    let dir = tempfile::tempdir().unwrap();
    let our_conf = conf(dir.path(), "1.0.0", "10.71.0.0/24");
    let ref_conf = our_conf.clone();
    let ids: Vec<String> = (0..40).map(|i| format!("mixed{i}")).collect();
    let children: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            if i % 2 == 0 {
                spawn(&ours, &Call::new("ADD", id), &our_conf)
            } else {
                spawn(&reference, &Call::new("ADD", id), &ref_conf)
            }
        })
        .collect();
    let addrs: BTreeSet<String> = children.into_iter().map(|c| address(&finish(c))).collect();
    assert_eq!(addrs.len(), 40);
    assert_eq!(ip_files(&dir.path().join("shared")).len(), 40);
    for (i, id) in ids.iter().enumerate() {
        let bin = if i % 2 == 0 { &reference } else { &ours };
        assert!(run(bin, &Call::new("DEL", id), &our_conf).ok);
    }
    assert!(ip_files(&dir.path().join("shared")).is_empty());
}
