//! Delegation to the IPAM plugin named by `ipam.type`: host-local and static run in-process
//! (multinet-ipam), any other type is executed from CNI_PATH with the plugin's own stdin, as
//! the reference plugins do. Errors keep the IPAM plugin's code.

use multinet_cni::{CniError, GcRequest, NetworkResult, Request};
use multinet_ipam::IpamError;
use multinet_ipam::host_local::{self, HostLocalConfig};
use serde_json::Value;
use std::thread::JoinHandle;

use crate::error::{Error, Result};

/// A host-local allocation under way.
#[derive(Debug)]
pub struct PendingAdd {
    task: JoinHandle<std::result::Result<NetworkResult, IpamError>>,
    /// Some range is IPv6: the interface needs IPv6 enabled.
    pub ipv6: bool,
}

/// A host-local release under way.
#[derive(Debug)]
pub struct Releasing(std::io::Result<JoinHandle<std::result::Result<(), IpamError>>>);

/// Runs host-local's store work (lock, files, sync) on a plain thread of its own. Not tokio's
/// blocking pool: the pool's threads outlive the work, and a runtime waits for them when it
/// shuts down, a second hand-off at the end of every call.
fn spawn_store_work<T: Send + 'static>(
    work: impl FnOnce() -> std::result::Result<T, IpamError> + Send + 'static,
) -> std::io::Result<JoinHandle<std::result::Result<T, IpamError>>> {
    std::thread::Builder::new()
        .name("multinet-ipam".into())
        .spawn(work)
}

/// The thread's outcome. Joining blocks, which is right where it is called: the call has
/// nothing else to do until the store work is done.
fn joined<T>(task: JoinHandle<T>) -> std::result::Result<T, CniError> {
    task.join()
        .map_err(|_| CniError::internal("host-local store work panicked"))
}

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

    // host-local's file work runs either on a thread of its own, overlapped with the kernel
    // work (start_add, start_del), or inline where there is nothing to overlap (the release
    // after a failed ADD): never as a hand-off that the caller just waits for.

    /// For host-local: checks the config now (so a bad one never touches the kernel) and
    /// starts the allocation on a thread of its own, to overlap its file work (lock, write,
    /// sync) with the link's creation. None for other IPAM types, which run in order.
    pub fn start_add(&self) -> Result<Option<PendingAdd>> {
        if !self.is_host_local() {
            return Ok(None);
        }
        let env = &self.req.env;
        let cfg = HostLocalConfig::parse(&self.req.config, Some(self.conf()), env)
            .map_err(|e| self.err("ADD")(e.into()))?;
        let ipv6 = cfg.ranges.iter().any(|set| !set.is_v4());
        let (id, ifname) = (env.container_id.clone(), env.ifname.clone());
        let task = spawn_store_work(move || host_local::add(&cfg, &id, &ifname))
            .map_err(|e| self.err("ADD")(CniError::io(format!("start host-local: {e}"))))?;
        Ok(Some(PendingAdd { task, ipv6 }))
    }

    /// The addresses of an allocation started by [`Ipam::start_add`].
    pub fn finish_add(&self, pending: PendingAdd) -> Result<NetworkResult> {
        let result = joined(pending.task)
            .and_then(|r| r.map_err(CniError::from))
            .map_err(self.err("ADD"))?;
        self.non_empty(result)
    }

    fn non_empty(&self, result: NetworkResult) -> Result<NetworkResult> {
        if result.ips.is_empty() {
            return Err(self.err("ADD")(CniError::internal(format!(
                "IPAM plugin {:?} returned no IP address",
                self.plugin_type
            ))));
        }
        Ok(result)
    }

    /// For host-local: releases on a thread of its own, to overlap with the link's deletion
    /// (which waits in the kernel). None for other IPAM types.
    pub fn start_del(&self) -> Option<Releasing> {
        if !self.is_host_local() {
            return None;
        }
        let env = &self.req.env;
        let (config, ipam) = (self.req.config.clone(), self.conf().clone());
        let (id, ifname) = (env.container_id.clone(), env.ifname.clone());
        let started = spawn_store_work(move || {
            let loc = host_local::location(&config, Some(&ipam))?;
            host_local::del(&loc, &id, &ifname)
        });
        Some(Releasing(started))
    }

    /// Waits for a release started by [`Ipam::start_del`].
    pub fn finish_del(&self, releasing: Releasing) -> Result<()> {
        match releasing.0 {
            Ok(task) => joined(task).and_then(|r| r.map_err(CniError::from)),
            Err(e) => Err(CniError::io(format!("start host-local: {e}"))),
        }
        .map_err(self.err("DEL"))
    }

    fn host_local_del(&self) -> std::result::Result<(), CniError> {
        let env = &self.req.env;
        let loc = host_local::location(&self.req.config, Some(self.conf()))?;
        Ok(host_local::del(&loc, &env.container_id, &env.ifname)?)
    }

    /// Allocates addresses; a result without any is an error.
    pub async fn add(&self) -> Result<NetworkResult> {
        let result = multinet_ipam::ipam_add(self.conf(), self.req)
            .await
            .map_err(self.err("ADD"))?;
        self.non_empty(result)
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
