//! One CNI call, as its verbs run it: load the config, the pod and its networks; plan the
//! attachments; record them; run the delegates; report the network-status.

pub mod attachment;
pub mod config;
pub mod delegate;
pub mod devices;
pub mod devinfo;
pub mod hotplug;
pub mod orphans;
pub mod own;
pub mod plan;
pub mod podnet;
pub mod resolve;
pub mod source;
pub mod status;
pub mod store;
pub mod verbs;
pub mod waves;
