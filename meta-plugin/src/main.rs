//! The `multinet` binary. Started by a container runtime it is the meta CNI plugin; started under
//! one of its delegates' names (a symlink in /opt/cni/bin) it is that delegate; `multinet demo`
//! runs the demo; `multinet install` puts it on a node and writes its config.

use multinet::own::OwnDelegate;

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
        Some("install") => std::process::exit(multinet::install::main(&args[1..])),
        Some("sriov") if args.get(1).map(String::as_str) == Some("list") => {
            // PFs and VFs of this node with drivers, names and owners (MULTINET_SYSFS_ROOT and
            // MULTINET_SRIOV_STATE_DIR select another tree).
            let sysfs = multinet_sriov::Sysfs::from_env();
            let state = multinet_sriov::StateDir::from_env();
            let rows = multinet_sriov::list_devices(&sysfs, &state);
            print!("{}", multinet_sriov::DeviceTable(&rows));
        }
        Some("--version" | "version") => {
            println!("multinet {}", env!("CARGO_PKG_VERSION"));
        }
        Some("--help" | "help" | "-h") => {
            println!(
                "multinet {}: multi-network meta CNI plugin\n\n\
                 Called by a container runtime with CNI_* variables and a config on stdin.\n\
                 Subcommands: demo [--keep], install [--help], sriov list, version",
                env!("CARGO_PKG_VERSION")
            );
        }
        _ => {
            multinet::logging::init_from_env();
            multinet_cni::run_main(multinet::meta::MetaPlugin::new())
        }
    }
}
