//! `multinet doctor`: the questions of every CNI troubleshooting guide, answered on the node in one
//! command. Which config the runtime reads and whether it parses; the cluster network and its
//! readiness file; plugin binaries; the API and multinet's permissions there; the daemon; stale
//! records, temp files and VF pools; and with `--pod` one pod from its annotation to its
//! interfaces. One line per check with its fix, `--json` for tools, exit 1 when a check failed.
//!
//! `report` holds the findings and the pure rules; `node` and `cluster` look at the node and the
//! API, through the call's own code wherever the call already answers the question.

pub mod cluster;
pub mod node;
pub mod report;

use std::path::PathBuf;

use clap::Parser;

use crate::call::store::AttachmentStore;
use report::{Check, Report};

/// The exit code of a command line that does not parse.
pub const EXIT_BAD_ARGS: i32 = 2;

/// `multinet doctor`: checks this node's multinet and says how to fix what is wrong.
#[derive(Debug, PartialEq, Eq, Parser)]
#[command(name = "multinet doctor")]
pub struct DoctorArgs {
    /// The runtime's CNI config folder; the runtime reads its lexically first file.
    #[arg(long, value_name = "DIR", default_value = crate::install::DEFAULT_CNI_CONF_DIR)]
    pub cni_conf_dir: PathBuf,
    /// Check this multinet config instead of the folder's first file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The runtime's CNI_PATH (searched after the config's binDir).
    #[arg(long, value_name = "DIRS", env = "CNI_PATH", value_delimiter = ':')]
    pub cni_path: Vec<PathBuf>,
    /// One pod, as NAMESPACE/NAME: its annotation, networks, record and interfaces.
    #[arg(long, value_name = "NS/NAME", value_parser = parse_pod)]
    pub pod: Option<(String, String)>,
    /// Print the checks as JSON: {"ok": bool, "checks": [{name, status, detail, fix}]}.
    #[arg(long)]
    pub json: bool,
}

fn parse_pod(text: &str) -> Result<(String, String), String> {
    match text.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_string(), name.to_string()))
        }
        _ => Err(format!("{text:?} is not NAMESPACE/NAME")),
    }
}

/// Parses the flags after `multinet doctor`.
pub fn parse_args(args: &[String]) -> Result<DoctorArgs, clap::Error> {
    DoctorArgs::try_parse_from(
        std::iter::once("multinet doctor").chain(args.iter().map(String::as_str)),
    )
}

/// Runs every check and returns what they found.
pub async fn run(args: &DoctorArgs) -> Report {
    let mut checks: Vec<Check> = Vec::new();
    let Some(conf) = node::runtime_config(&args.cni_conf_dir, args.config.as_deref(), &mut checks)
    else {
        checks.push(Check::skip(
            "other checks",
            "they need multinet's config: fix the lines above first",
        ));
        return Report { checks };
    };
    checks.push(node::readiness(&conf.conf));
    let mut source = cluster::source(&conf, &mut checks).await;
    if !cluster::permissions(source.as_ref(), &mut checks).await {
        // One wait for an API that does not answer is enough.
        source = None;
    }
    let cluster_network = cluster::cluster_network(&conf, source.as_ref(), &mut checks).await;

    let store = AttachmentStore::new(&conf.conf.cni_dir);
    let (records, unreadable) = node::records(&store);
    let path = node::search_path(&conf.conf, &args.cni_path);
    // The cluster network and every network config a record holds, each once.
    let mut networks: Vec<(String, multinet_cni::DelegateConf)> = Vec::new();
    if let Some(n) = cluster_network {
        networks.push((n.key, n.conf));
    }
    for a in records.iter().flat_map(|r| &r.attachments) {
        if !networks
            .iter()
            .any(|(k, c)| *k == a.network && *c == a.conf)
        {
            networks.push((a.network.clone(), a.conf.clone()));
        }
    }
    for (network, conf) in &networks {
        checks.push(node::binaries(network, conf, &path));
    }
    checks.push(node::daemon(&conf.conf));
    checks.push(node::stale_records(&store, &records, &unreadable));
    checks.push(node::temp_files(&[
        store.dir(),
        &conf.conf.device_info_dir,
        &args.cni_conf_dir,
    ]));
    checks.push(node::vf_pools(
        &multinet_sriov::Sysfs::from_env(),
        &multinet_sriov::StateDir::from_env(),
        &records,
    ));
    if let Some((namespace, name)) = &args.pod {
        cluster::pod(
            &conf,
            source.as_ref(),
            &records,
            &args.cni_path,
            namespace,
            name,
            &mut checks,
        )
        .await;
    }
    Report { checks }
}

/// `multinet doctor ...`: prints the report and returns the exit code (0 all well, 1 a check
/// failed, 2 bad flags).
pub fn main(args: &[String]) -> i32 {
    let args = match parse_args(args) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { EXIT_BAD_ARGS } else { 0 };
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("multinet doctor: starting the runtime: {e}");
            return 1;
        }
    };
    let report = runtime.block_on(run(&args));
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{report}");
    }
    report.exit_code()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_parse_with_defaults() {
        let a = parse_args(&args(&[
            "--pod",
            "team/web",
            "--json",
            "--cni-path",
            "/a:/b",
        ]))
        .unwrap();
        assert_eq!(a.cni_conf_dir, PathBuf::from("/etc/cni/net.d"));
        assert_eq!(a.pod, Some(("team".into(), "web".into())));
        assert!(a.json);
        assert_eq!(a.cni_path, vec![PathBuf::from("/a"), PathBuf::from("/b")]);
        for bad in ["web", "/web", "team/", "a/b/c"] {
            assert!(parse_args(&args(&["--pod", bad])).is_err(), "{bad}");
        }
    }
}
