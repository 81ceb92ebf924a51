//! Delegation to the IPAM plugin named by `ipam.type`: host-local and static run in-process
//! (multinet-ipam), any other type is executed from CNI_PATH with the plugin's own stdin, as
//! the reference plugins do. Errors keep the IPAM plugin's code.

use multinet_cni::{CniError, GcRequest, NetworkResult, Request};
use multinet_ipam::host_local::{self, HostLocalConfig};
use serde_json::Value;

use crate::error::{Error, Result};

/// The IPAM plugin of one request.
#[derive(Debug, Clone, Copy)]
pub struct Ipam<'a> {
    pub plugin: &'static str,
    pub plugin_type: &'a str,
    pub req: &'a Request,
}

impl Ipam<'_> {
    fn conf(&self) -> &Value {
        static NONE: Value = Value::Null;
        self.req.config.ipam.as_ref().unwrap_or(&NONE)
    }

    fn err(&self, verb: &'static str) -> impl FnOnce(CniError) -> Error {
        let plugin = self.plugin;
        move |source| Error::Ipam {
            plugin,
            verb,
            source,
        }
    }

    fn is_host_local(&self) -> bool {
        self.plugin_type == multinet_ipam::HOST_LOCAL
    }

    // host-local's file work runs inline rather than on a blocking-pool thread: a plugin call
    // has nothing else to do meanwhile, and on a busy node every thread hand-off costs a
    // scheduling delay on the ADD and DEL paths.

    fn host_local_add(&self) -> std::result::Result<NetworkResult, CniError> {
        let env = &self.req.env;
        let cfg = HostLocalConfig::parse(&self.req.config, Some(self.conf()), env)?;
        Ok(host_local::add(&cfg, &env.container_id, &env.ifname)?)
    }

    fn host_local_del(&self) -> std::result::Result<(), CniError> {
        let env = &self.req.env;
        let loc = host_local::location(&self.req.config, Some(self.conf()))?;
        Ok(host_local::del(&loc, &env.container_id, &env.ifname)?)
    }

    /// Allocates addresses; a result without any is an error.
    pub async fn add(&self) -> Result<NetworkResult> {
        let result = if self.is_host_local() {
            self.host_local_add()
        } else {
            multinet_ipam::ipam_add(self.conf(), self.req).await
        }
        .map_err(self.err("ADD"))?;
        if result.ips.is_empty() {
            return Err(self.err("ADD")(CniError::internal(format!(
                "IPAM plugin {:?} returned no IP address",
                self.plugin_type
            ))));
        }
        Ok(result)
    }

    pub async fn del(&self) -> Result<()> {
        if self.is_host_local() {
            self.host_local_del()
        } else {
            multinet_ipam::ipam_del(self.conf(), self.req).await
        }
        .map_err(self.err("DEL"))
    }

    pub async fn check(&self) -> Result<()> {
        multinet_ipam::ipam_check(self.conf(), self.req)
            .await
            .map_err(self.err("CHECK"))
    }

    pub async fn status(&self) -> Result<()> {
        multinet_ipam::ipam_status(self.conf(), self.req)
            .await
            .map_err(self.err("STATUS"))
    }

    pub async fn gc(&self, gc: &GcRequest) -> Result<()> {
        multinet_ipam::ipam_gc(self.conf(), self.req, gc)
            .await
            .map_err(self.err("GC"))
    }
}
