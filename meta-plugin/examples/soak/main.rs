//! The soak bench: N ADD/DEL cycles of a pod with a cluster network and three secondary networks
//! (our macvlan in-process, the reference macvlan exec'd, our SR-IOV delegate on a fake NIC),
//! with SIGKILLs of multinet and of exec'd delegates at random moments, Kubernetes API faults
//! (errors, slow answers, the API down) and GC runs, then a count of everything left behind:
//! links in the pod and node namespaces, IP reservations, VF owners, attachment records,
//! device-info files, temp files and processes. Exit status 1 if anything leaked or a DEL never
//! succeeded.
//!
//!     cargo build --release -p multinet
//!     cargo run --release -p multinet --example soak -- [--cycles N] [--seed S] [--from C] [-v] [--keep]
//!
//! `--from C --cycles 1` replays cycle C of a seed (every cycle's scenario is drawn from the seed
//! and its number alone). Needs root, iproute2 and Debian's containernetworking-plugins.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use std::path::PathBuf;

fn usage() -> ! {
    eprintln!("usage: soak [--cycles N] [--seed S] [--from C] [-v] [--keep]");
    std::process::exit(2)
}

fn multinet_exe() -> PathBuf {
    // target/<profile>/examples/soak -> target/<profile>/multinet
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("multinet");
    if !bin.exists() {
        eprintln!(
            "{} missing: cargo build -p multinet (same profile) first",
            bin.display()
        );
        std::process::exit(2);
    }
    bin
}

fn main() {
    let mut opts = harness::Options {
        cycles: 10_000,
        seed: 1,
        from: 0,
        multinet: multinet_exe(),
        verbose: false,
        keep: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut number = || -> u64 {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| usage())
        };
        match a.as_str() {
            "--cycles" => opts.cycles = number(),
            "--seed" => opts.seed = number(),
            "--from" => opts.from = number(),
            "-v" | "--verbose" => opts.verbose = true,
            "--keep" => opts.keep = true,
            _ => usage(),
        }
    }
    if !nix::unistd::geteuid().is_root() {
        eprintln!("the soak bench needs root (it creates network namespaces)");
        std::process::exit(2);
    }
    let started = std::time::Instant::now();
    let report = harness::run(&opts);
    print!("{}", report.render());
    println!("wall time: {:.1} s", started.elapsed().as_secs_f64());
    std::process::exit(if report.clean() { 0 } else { 1 });
}
