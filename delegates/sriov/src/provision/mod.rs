//! VF provisioning from a node policy: how many VFs each selected PF has, which driver they
//! are bound to, the PF's MTU, and the pool they form.
//!
//! - [`policy`]: the policy file, validated field by field (pure).
//! - [`plan`]: policy + the node's PFs + who holds which VF -> ordered steps and refusals (pure).
//! - [`view`]: reads the PFs from sysfs and the holders from the allocation records.
//! - [`apply`]: does the steps on sysfs under the VFs' locks and reports.

pub mod apply;
pub mod plan;
pub mod policy;
pub mod view;

pub use apply::{Report, apply_policy, load_policy, plan_policy};
pub use plan::{Holder, Holders, NodeView, PfView, Plan, Refusal, Step, VfView};
pub use policy::{DeviceType, NicSelector, NodePolicy, PolicyEntry};
