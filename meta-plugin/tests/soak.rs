//! A short soak (examples/soak is the long bench): 300 ADD/DEL cycles of a pod with a cluster
//! network (reference bridge) and three secondary networks (our macvlan in-process, the
//! reference macvlan exec'd, our SR-IOV delegate on a fake NIC), with SIGKILLs of multinet and of
//! exec'd delegates, Kubernetes API faults and GC. Nothing may be left behind and every DEL must
//! succeed in the end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../examples/soak/harness.rs"]
mod harness;

use multinet_testbed::require_root;

#[test]
fn soak_300_cycles_with_kills_and_api_faults_leaves_nothing() {
    require_root!();
    let cycles = std::env::var("SOAK_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let opts = harness::Options {
        cycles,
        seed: std::env::var("SOAK_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(7),
        from: 0,
        multinet: env!("CARGO_BIN_EXE_multinet").into(),
        verbose: false,
        keep: false,
    };
    let report = harness::run(&opts);
    let text = report.render();
    // Shown also when the test passes (with --nocapture): the figures are the point.
    println!("{text}");
    assert_eq!(report.cycles, cycles);
    // The harness did what it claims: kills of both kinds landed and faults were injected.
    assert!(
        report.kills.get("multinet in ADD").copied().unwrap_or(0) > 0
            && report.kills.keys().any(|k| k.starts_with("delegate")),
        "no kill landed: {text}"
    );
    assert!(!report.faults.is_empty(), "no API fault injected: {text}");
    assert!(report.add_ok > 0, "no ADD succeeded: {text}");
    assert_eq!(
        report.del_never_succeeded,
        Vec::<(u64, String)>::new(),
        "{text}"
    );
    for (kind, n) in report.leaks_by_kind() {
        assert_eq!(n, 0, "{kind} leaked: {text}");
    }
    assert!(report.violations.is_empty(), "{text}");
}
