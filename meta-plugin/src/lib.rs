//! multinet: the multi-network meta CNI plugin. Module order follows one ADD:
//! config → source (pod, NADs) → plan → resolve → store → delegate → routes → status.

pub mod attachment;
pub mod config;
pub mod delegate;
pub mod demo;
pub mod devices;
pub mod devinfo;
pub mod error;
pub mod inject;
pub mod install;
pub mod logging;
pub mod meta;
pub mod orphans;
pub mod own;
pub mod plan;
pub mod podnet;
pub mod resolve;
pub mod source;
pub mod status;
pub mod store;
pub mod thick;
pub mod waves;
