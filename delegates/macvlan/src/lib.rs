//! The macvlan delegate, drop-in for the reference macvlan plugin: its config only; the driver
//! it shares with ipvlan is `multinet_link`.
//!
//! [`MacvlanPlugin`] implements [`multinet_cni::Plugin`], so the meta-plugin runs it
//! in-process; the `macvlan` binary is the same plugin behind [`multinet_cni::run_main`].
//!
//! Config keys: `master` (default: the default route's interface, in the container with
//! `linkInContainer`), `mode` (bridge, private, vepa, passthru), `mtu` (0 up to the master's),
//! `mac`, `linkInContainer`, `bcqueuelen`, `ipam` (optional: without it the link is layer 2
//! only). MAC precedence: `mac` < CNI_ARGS `MAC` < `runtimeConfig.mac`.

pub mod conf;

use multinet_cni::{GcRequest, NetworkResult, Plugin, Request};
use multinet_link as driver;
use multinet_link::prev_result;

pub use conf::{PLUGIN, macvlan_conf};

/// The macvlan plugin.
#[derive(Debug, Clone, Copy, Default)]
pub struct MacvlanPlugin;

impl MacvlanPlugin {
    pub fn new() -> Self {
        MacvlanPlugin
    }
}

impl Plugin for MacvlanPlugin {
    fn name(&self) -> &'static str {
        PLUGIN
    }

    async fn add(&self, req: &Request) -> multinet_cni::Result<NetworkResult> {
        let conf = macvlan_conf(req)?;
        Ok(driver::add(req, &conf).await?)
    }

    async fn del(&self, req: &Request) -> multinet_cni::Result<()> {
        let ipam = conf::macvlan_ipam_type(req)?;
        Ok(driver::del(PLUGIN, driver::MACVLAN_KIND, req, ipam.as_deref()).await?)
    }

    async fn check(&self, req: &Request) -> multinet_cni::Result<()> {
        let conf = macvlan_conf(req)?;
        let prev = prev_result(PLUGIN, req, "CHECK")?;
        Ok(driver::check(req, &conf, &prev).await?)
    }

    async fn status(&self, req: &Request) -> multinet_cni::Result<()> {
        let ipam = conf::macvlan_ipam_type(req)?;
        Ok(driver::status(PLUGIN, req, ipam.as_deref()).await?)
    }

    async fn gc(&self, req: &Request, gc: &GcRequest) -> multinet_cni::Result<()> {
        let ipam = conf::macvlan_ipam_type(req)?;
        Ok(driver::gc(PLUGIN, req, gc, ipam.as_deref()).await?)
    }
}
