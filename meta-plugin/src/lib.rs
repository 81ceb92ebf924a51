//! multinet: the multi-network meta CNI plugin.
//!
//! `call` is one CNI call from the runtime, in the order of an ADD: its verbs (`call::verbs`),
//! loading (config, source of pods and NADs, resolve), planning (plan, devices, devinfo,
//! waves), the record (store, orphans), running delegates (delegate, own, podnet) and the
//! network-status. Around it stand the programs: the thick-mode node daemon (`thick`),
//! `multinet install`, `multinet demo`, `multinet doctor`, and logging.

pub mod call;
pub mod demo;
pub mod doctor;
pub mod error;
pub mod install;
pub mod logging;
pub mod metrics;
pub mod provision;
pub mod thick;
