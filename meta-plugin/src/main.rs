//! The `multinet` binary. Started by a container runtime it is the meta CNI plugin; started under
//! one of its delegates' names (a symlink in /opt/cni/bin) it is that delegate; `multinet demo`
//! runs the demo; `multinet install` puts it on a node and writes its config; `multinet doctor`
//! checks a node.

use multinet::call::own::OwnDelegate;
use multinet::thick;

fn main() {
    let argv0 = std::env::args().next().unwrap_or_default();
    let invoked_as = std::path::Path::new(&argv0)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("multinet")
        .to_string();
    if let Some(delegate) = OwnDelegate::from_type(&invoked_as) {
        delegate.run_main();
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("demo") => std::process::exit(multinet::demo::main(&args[1..])),
        Some("doctor") => std::process::exit(multinet::doctor::main(&args[1..])),
        Some("install") => std::process::exit(multinet::install::main(&args[1..])),
        Some("daemon") => std::process::exit(multinet::thick::daemon::main(&args[1..])),
        Some("sriov") if args.get(1).map(String::as_str) == Some("list") => {
            // PFs and VFs of this node with drivers, names and owners (MULTINET_SYSFS_ROOT and
            // MULTINET_SRIOV_STATE_DIR select another tree).
            let sysfs = multinet_sriov::Sysfs::from_env();
            let state = multinet_sriov::StateDir::from_env();
            // Records of earlier versions name no pod: the meta-plugin's record of the
            // container does (MULTINET_CNI_DIR when cniDir is not the default).
            let cni_dir: std::path::PathBuf = std::env::var_os("MULTINET_CNI_DIR").map_or_else(
                || multinet::call::config::DEFAULT_CNI_DIR.into(),
                Into::into,
            );
            let store = multinet::call::store::AttachmentStore::new(&cni_dir);
            let rows = multinet_sriov::list_devices_with(&sysfs, &state, |container_id| {
                let pod = store.load(container_id).ok()??.pod?;
                Some(format!("{}/{}", pod.namespace, pod.name))
            });
            print!("{}", multinet_sriov::DeviceTable(&rows));
        }
        Some("sriov") if args.get(1).map(String::as_str) == Some("apply") => {
            std::process::exit(multinet::provision::main(&args[2..]))
        }
        Some("--version" | "version") => {
            println!("multinet {}", env!("CARGO_PKG_VERSION"));
        }
        Some("--help" | "help" | "-h") => {
            println!(
                "multinet {}: multi-network meta CNI plugin\n\n\
                 Called by a container runtime with CNI_* variables and a config on stdin.\n\
                 Subcommands: daemon [--help], demo [--keep], doctor [--help], install [--help], sriov list,\n\
                 sriov apply --policy FILE [--dry-run], version",
                env!("CARGO_PKG_VERSION")
            );
        }
        _ => run_cni_call(),
    }
}

/// A CNI call from the runtime: handed to the node daemon when the config names one that
/// listens, else run here.
fn run_cni_call() -> ! {
    let stdin = match multinet_cni::read_stdin(std::io::stdin().lock()) {
        Ok(stdin) => stdin,
        Err(err) => {
            let out = multinet_cni::error_bytes(&err, multinet_cni::CniVersion::LATEST);
            multinet_cni::exit_with(&out, multinet_cni::FAILURE_EXIT_CODE)
        }
    };
    let is_version = std::env::var("CNI_COMMAND").is_ok_and(|c| c == "VERSION");
    let socket = (!is_version)
        .then(|| thick::shim::daemon_socket(&stdin))
        .flatten();
    let mut no_daemon = None;
    if let Some(socket) = &socket {
        match thick::shim::hand_over(socket, &multinet_cni::env::process_vars(), &stdin) {
            thick::shim::Handover::Answered { code, stdout } => {
                multinet_cni::exit_with(&stdout, code)
            }
            thick::shim::Handover::NoDaemon(e) => no_daemon = Some(e),
        }
    }
    multinet::logging::init_from_env();
    let mut plugin = multinet::call::verbs::MetaPlugin::new();
    if let (Some(socket), Some(e)) = (&socket, &no_daemon) {
        // Logged once the config's log is open (the first thing the call does).
        plugin = plugin.with_no_daemon_note(thick::shim::no_daemon_note(socket, e));
    }
    multinet_cni::run_main_with_stdin(plugin, &stdin)
}
