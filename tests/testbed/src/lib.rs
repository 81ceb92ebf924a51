//! Test bed shared by multinet's tests: root checks, network namespaces, veth pairs, macvlans,
//! guards for links made in the host namespace, and plugin calls as a runtime makes them.
//!
//! Every object created here is owned by a guard whose `Drop` removes it, so a failing (panicking)
//! test still cleans up. Names are unique per process and per call (`prefix + pid + counter`), so
//! tests may run in parallel, also across test binaries.
//!
//! Helpers panic with a clear message when the system refuses an operation: they are meant for
//! tests, where a panic is a failure with a readable cause.
//!
//! ```no_run
//! use multinet_testbed::{require_root, TestNetns, VethPair, unique_link_name};
//!
//! fn my_test() {
//!     require_root!();
//!     let ns = TestNetns::new();
//!     let veth = VethPair::new(Some(&ns), &unique_link_name("va"), Some(&ns), &unique_link_name("vb"));
//!     let links = ns.ip_json(&["link", "show", "dev", veth.a_name()]);
//!     assert_eq!(links[0]["ifname"], veth.a_name());
//! }
//! ```

mod cni;
mod command;
mod links;
mod names;
mod netns;
mod root;
pub mod sysfs;

pub use cni::{CniCall, CniOutput};
pub use command::{host_ip, host_ip_json, run_checked};
pub use links::{HostLinkGuard, Macvlan, VethPair};
pub use names::{unique_link_name, unique_name};
pub use netns::{TestNetns, current_thread_netns_inode};
pub use root::{is_root, reference_plugin, require_root};
