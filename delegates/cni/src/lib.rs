//! The CNI protocol for every multinet binary: config and result types for 0.1.0-1.1.0 with
//! conversion between versions, CNI_* environment validation, the error type with the spec's
//! codes (see [`ErrorCode`]), the plugin entry point ([`Plugin`], [`dispatch`], [`run_main`]) and
//! running an external plugin binary ([`exec_plugin`]).
//!
//! A plugin binary is:
//! ```no_run
//! use multinet_cni::{NetworkResult, Plugin, Request, Result, run_main};
//! struct Noop;
//! impl Plugin for Noop {
//!     fn name(&self) -> &'static str { "noop" }
//!     async fn add(&self, _req: &Request) -> Result<NetworkResult> { Ok(NetworkResult::default()) }
//!     async fn del(&self, _req: &Request) -> Result<()> { Ok(()) }
//!     async fn check(&self, _req: &Request) -> Result<()> { Ok(()) }
//! }
//! fn main() { run_main(Noop) }
//! ```

pub mod config;
pub mod delegate;
pub mod env;
pub mod error;
pub mod exec;
pub mod files;
pub mod plugin;
pub mod result;
pub mod trust;
pub mod version;

pub use config::{AnyConf, NetConf, NetConfList, PluginList, json_kind, parse_any};
pub use delegate::{DEVICE_INFO_FILE_CAPABILITY, DelegateConf, PluginConf};
pub use env::{CniEnv, Command, MAX_CONTAINER_ID_LEN, validate_container_id, validate_ifname};
pub use error::{CniError, ErrorCode, Result};
pub use exec::{DEFAULT_EXEC_TIMEOUT, ExecRequest, exec_plugin, exec_raw, find_plugin};
pub use plugin::{
    Attachment, FAILURE_EXIT_CODE, GcRequest, MAX_STDIN_BYTES, Plugin, Request, check_stdin_size,
    dispatch, error_bytes, error_version, exit_with, read_stdin, run_main, run_main_with_stdin,
};
pub use result::{Dns, Interface, IpConfig, NetworkResult, Route};
pub use version::{CniVersion, SUPPORTED_VERSIONS};
