//! VF provisioning from the node policy, as the binary offers it: `multinet sriov apply
//! --policy FILE [--dry-run]`, and the node daemon's `--sriov-policy FILE` (applied at start,
//! whenever the file changes, and a while after a run that left something undone). The policy,
//! planner and applier are multinet-sriov's `provision` module; this is only their command line
//! and their log.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use clap::Parser;
use multinet_sriov::provision::{Report, apply_policy, load_policy, plan_policy};
use multinet_sriov::{StateDir, Sysfs};

/// The exit code of a command line that does not parse.
pub const EXIT_BAD_ARGS: i32 = 2;
/// How often the daemon looks at the policy file's modification time.
pub const POLICY_POLL: Duration = Duration::from_secs(5);
/// How long the daemon waits before it tries again a policy it could not apply fully (a VF a pod
/// held may be free by then).
pub const POLICY_RETRY: Duration = Duration::from_secs(60);

/// `multinet sriov apply`: VF counts, VF drivers and PF MTUs as the node policy says.
#[derive(Debug, PartialEq, Eq, Parser)]
#[command(name = "multinet sriov apply")]
pub struct ApplyArgs {
    /// The node policy (YAML or JSON; see the README's "VF provisioning").
    #[arg(long, value_name = "FILE")]
    pub policy: PathBuf,
    /// Print the plan, one line per step, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Parses the flags after `multinet sriov apply`.
pub fn parse_args(args: &[String]) -> Result<ApplyArgs, clap::Error> {
    ApplyArgs::try_parse_from(
        std::iter::once("multinet sriov apply").chain(args.iter().map(String::as_str)),
    )
}

/// `multinet sriov apply ...` on the sysfs and state directory of the environment
/// (MULTINET_SYSFS_ROOT, MULTINET_SRIOV_STATE_DIR). Exit 0 when everything the policy asks for
/// is done (or, with --dry-run, can be planned), 1 when something is not, 2 on bad flags.
pub fn main(args: &[String]) -> i32 {
    let args = match parse_args(args) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { EXIT_BAD_ARGS } else { 0 };
        }
    };
    let policy = match load_policy(&args.policy) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("multinet sriov apply: {}: {e}", args.policy.display());
            return 1;
        }
    };
    let (sysfs, state) = (Sysfs::from_env(), StateDir::from_env());
    if args.dry_run {
        let plan = plan_policy(&policy, &sysfs, &state);
        for step in &plan.steps {
            println!("{step}");
        }
        for r in &plan.refused {
            println!("REFUSED: {r}");
        }
        for n in &plan.notes {
            println!("note: {n}");
        }
        if plan.is_empty() {
            println!("nothing to do: the node is as the policy says");
        }
        return i32::from(!plan.refused.is_empty());
    }
    let report = apply_policy(&policy, &sysfs, &state);
    print!("{report}");
    if report.done.is_empty() && report.is_complete() {
        println!("nothing to do: the node is as the policy says");
    }
    i32::from(!report.is_complete())
}

/// The node daemon's `--sriov-policy`: a thread that applies the policy now, again whenever
/// the file's modification time, size or inode changes (a ConfigMap update swaps a symlink: the
/// path is followed each time), and again after [`POLICY_RETRY`] while something is not done.
/// Results go to the log.
pub fn watch(path: PathBuf, sysfs: Sysfs, state: StateDir) -> std::io::Result<()> {
    watch_every(path, sysfs, state, POLICY_POLL, POLICY_RETRY)
}

/// [`watch`] with its intervals given.
pub fn watch_every(
    path: PathBuf,
    sysfs: Sysfs,
    state: StateDir,
    poll: Duration,
    retry: Duration,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("sriov-policy".into())
        .spawn(move || {
            let mut applied: Option<Option<Stamp>> = None;
            let mut retry_at: Option<Instant> = None;
            loop {
                let now = stamp(&path);
                let due = retry_at.is_some_and(|t| Instant::now() >= t);
                if due || applied.as_ref() != Some(&now) {
                    applied = Some(now);
                    // An invalid policy waits for the file to change; a refused step is retried.
                    retry_at = apply_and_log(&path, &sysfs, &state)
                        .filter(|r| !r.is_complete())
                        .map(|_| Instant::now() + retry);
                }
                std::thread::sleep(poll);
            }
        })
        .map(drop)
}

/// What tells one version of the policy file from the next.
#[derive(Debug, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode: meta.ino(),
    })
}

/// Applies the policy file once and logs every step, refusal and failure.
pub fn apply_and_log(path: &Path, sysfs: &Sysfs, state: &StateDir) -> Option<Report> {
    let policy = match load_policy(path) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(policy = %path.display(), error = %e, "SR-IOV policy not applied");
            return None;
        }
    };
    let report = apply_policy(&policy, sysfs, state);
    for step in &report.done {
        tracing::info!(policy = %path.display(), "SR-IOV provisioning: {step}");
    }
    for (step, why) in &report.failed {
        tracing::warn!(policy = %path.display(), "SR-IOV provisioning failed: {step}: {why}");
    }
    for r in &report.refused {
        tracing::warn!(policy = %path.display(), "SR-IOV provisioning refused: {r}");
    }
    for n in &report.notes {
        tracing::info!(policy = %path.display(), "SR-IOV provisioning: {n}");
    }
    tracing::info!(
        policy = %path.display(),
        done = report.done.len(),
        failed = report.failed.len(),
        refused = report.refused.len(),
        complete = report.is_complete(),
        "SR-IOV policy applied"
    );
    Some(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags() {
        let a = |v: &[&str]| parse_args(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            a(&["--policy", "/etc/p.yaml", "--dry-run"]).unwrap(),
            ApplyArgs {
                policy: "/etc/p.yaml".into(),
                dry_run: true
            }
        );
        assert!(!a(&["--policy=/p"]).unwrap().dry_run);
        assert_eq!(a(&[]).unwrap_err().exit_code(), EXIT_BAD_ARGS);
        assert_eq!(
            a(&["--policy=/p", "--bogus"]).unwrap_err().exit_code(),
            EXIT_BAD_ARGS
        );
    }
}
