//! Admission webhooks for multinet.
//!
//! - `/validate` ([`validate`]): NetworkAttachmentDefinition CREATE/UPDATE.
//! - `/isolate` ([`isolate`]): pod CREATE, the selection annotations and namespace isolation.
//! - `/mutate` ([`mutate`]): pod CREATE, device-plugin resources, node selectors and the
//!   `podnetinfo` downward-API volume for the networks the pod selects.
//!
//! Every decision is a plain function from an admission request to an admission response; NAD
//! lookups go through [`mutate::NadLookup`]. The [`server`] is a thin HTTPS layer around them.

pub mod control;
mod error;
pub mod flags;
pub mod isolate;
pub mod metrics;
pub mod mutate;
pub mod nads;
pub mod own_delegates;
pub mod review;
pub mod server;
pub mod tls;
pub mod validate;

pub use error::WebhookError;
pub use server::{RunningWebhook, WebhookConfig, start};
