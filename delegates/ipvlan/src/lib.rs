//! The ipvlan delegate, drop-in for the reference ipvlan plugin. It shares its driver with
//! macvlan ([`multinet_link`]); only the config differs.
//!
//! Config keys: `master`, `mode` (l2, l3, l3s), `mtu`, `linkInContainer`, `ipam`. Chained
//! after another plugin, a missing `master` is prevResult's single interface and a missing
//! `ipam` reuses prevResult's addresses; otherwise `ipam` is required.

pub mod conf;

use multinet_cni::{Command, GcRequest, NetworkResult, Plugin, Request};
use multinet_link as driver;
use multinet_link::prev_result;

pub use conf::{PLUGIN, ipvlan_conf};

/// The ipvlan plugin.
#[derive(Debug, Clone, Copy, Default)]
pub struct IpvlanPlugin;

impl IpvlanPlugin {
    pub fn new() -> Self {
        IpvlanPlugin
    }
}

impl Plugin for IpvlanPlugin {
    fn name(&self) -> &'static str {
        PLUGIN
    }

    async fn add(&self, req: &Request) -> multinet_cni::Result<NetworkResult> {
        let conf = ipvlan_conf(req, Command::Add)?;
        Ok(driver::add(req, &conf).await?)
    }

    async fn del(&self, req: &Request) -> multinet_cni::Result<()> {
        let ipam = conf::ipvlan_ipam_type(req)?;
        Ok(driver::del(PLUGIN, driver::IPVLAN_KIND, req, ipam.as_deref()).await?)
    }

    async fn check(&self, req: &Request) -> multinet_cni::Result<()> {
        let conf = ipvlan_conf(req, Command::Check)?;
        let prev = prev_result(PLUGIN, req, "CHECK")?;
        Ok(driver::check(req, &conf, &prev).await?)
    }

    async fn status(&self, req: &Request) -> multinet_cni::Result<()> {
        let ipam = conf::ipvlan_ipam_type(req)?;
        Ok(driver::status(PLUGIN, req, ipam.as_deref()).await?)
    }

    async fn gc(&self, req: &Request, gc: &GcRequest) -> multinet_cni::Result<()> {
        let ipam = conf::ipvlan_ipam_type(req)?;
        Ok(driver::gc(PLUGIN, req, gc, ipam.as_deref()).await?)
    }
}
