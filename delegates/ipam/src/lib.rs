//! host-local and static IPAM: drop-ins for the reference plugins, as two binaries
//! (`host-local`, `static`) and as a library that multinet's own delegates call in-process.
//!
//! # Library API
//!
//! Each function takes the IPAM section to use (normally `req.config.ipam`) and the calling
//! plugin's [`Request`]; it dispatches on `ipam.type`:
//! `"host-local"` and `"static"` run in-process, any other type is looked up in CNI_PATH and
//! executed as an external plugin (e.g. the reference `dhcp`) with the caller's env, extra env
//! and config (whose `ipam` is replaced by `ipam_conf` when they differ).
//!
//! ```text
//! pub async fn ipam_add(ipam_conf: &Value, req: &Request) -> Result<NetworkResult>;
//! pub async fn ipam_del(ipam_conf: &Value, req: &Request) -> Result<()>;
//! pub async fn ipam_check(ipam_conf: &Value, req: &Request) -> Result<()>;
//! pub async fn ipam_status(ipam_conf: &Value, req: &Request) -> Result<()>;
//! pub async fn ipam_gc(ipam_conf: &Value, req: &Request, gc: &GcRequest) -> Result<()>;
//! ```
//!
//! Errors carry CNI codes: 7 for a bad key (the message starts with the key path, e.g.
//! `ipam.ranges[0][1].rangeStart: ...`), 11 for an exhausted range (the message names it), 100
//! for an address in use or a duplicate allocation, 101 when CHECK finds no allocation, 50 when
//! STATUS finds the store unwritable, 5 for file errors, 1 for version limits. An invalid
//! config is refused before anything is written.
//!
//! The store layout is the reference host-local's, so both can share a dataDir; see
//! [`host_local::store`].

pub mod addr;
pub mod error;
pub mod host_local;
pub mod json;
pub mod range;
pub mod resolv;
pub mod static_ipam;

use multinet_cni::{
    CniError, Command, DEFAULT_EXEC_TIMEOUT, ExecRequest, GcRequest, NetworkResult, Plugin,
    Request, Result, exec_plugin, find_plugin,
};
use serde_json::Value;

pub use error::IpamError;
use host_local::HostLocalConfig;
use static_ipam::StaticConfig;

/// The in-process IPAM types.
pub const HOST_LOCAL: &str = "host-local";
pub const STATIC: &str = "static";

fn ipam_type(ipam_conf: &Value) -> Result<&str> {
    match ipam_conf.get("type") {
        Some(Value::String(t)) if !t.is_empty() => Ok(t),
        _ => Err(IpamError::config("ipam.type", "is missing or not a non-empty string").into()),
    }
}

/// Runs blocking store work (flock, files) off the async thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, IpamError> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| CniError::internal(format!("IPAM task failed: {e}")))?
        .map_err(CniError::from)
}

/// The config bytes for an external IPAM plugin.
fn external_stdin(ipam_conf: &Value, req: &Request) -> Result<Vec<u8>> {
    if req.config.ipam.as_ref() == Some(ipam_conf) {
        return Ok(req.stdin.clone());
    }
    let mut conf = req.config.clone();
    conf.ipam = Some(ipam_conf.clone());
    serde_json::to_vec(&conf.to_value()?)
        .map_err(|e| CniError::internal(format!("encoding IPAM config: {e}")))
}

/// Plugin types that are never IPAM: meta-plugins and multinet's own interface plugins.
const NOT_IPAM: &[&str] = &[
    "multinet",
    "multus",
    "multus-shim",
    "macvlan",
    "ipvlan",
    "sriov",
];

async fn exec_external(
    plugin_type: &str,
    command: Command,
    ipam_conf: &Value,
    req: &Request,
) -> Result<Option<NetworkResult>> {
    // A NAD's config could name a meta-plugin, or one of multinet's own interface plugins, as
    // IPAM: run as IPAM with the same config it would exec itself again, without end.
    if NOT_IPAM.contains(&plugin_type) {
        return Err(CniError::invalid_config(format!(
            "ipam.type {plugin_type:?} is not an IPAM plugin"
        )));
    }
    let path = find_plugin(plugin_type, &req.env.path)
        .map_err(|e| e.context(format!("ipam.type {plugin_type:?}")))?;
    let stdin = external_stdin(ipam_conf, req)?;
    exec_plugin(
        &path,
        &ExecRequest {
            command,
            env: &req.env,
            extra_env: &req.extra_env,
            stdin: &stdin,
            timeout: DEFAULT_EXEC_TIMEOUT,
            keep_fd: None,
        },
    )
    .await
}

/// ADD: allocates (host-local), reads (static) or asks the external plugin.
pub async fn ipam_add(ipam_conf: &Value, req: &Request) -> Result<NetworkResult> {
    match ipam_type(ipam_conf)? {
        HOST_LOCAL => host_local_add(Some(ipam_conf), req).await,
        STATIC => static_add(Some(ipam_conf), req),
        other => exec_external(other, Command::Add, ipam_conf, req)
            .await?
            .ok_or_else(|| CniError::decode(format!("IPAM plugin {other:?} returned no result"))),
    }
}

/// DEL: releases; never needs the netns; repeated DELs succeed.
pub async fn ipam_del(ipam_conf: &Value, req: &Request) -> Result<()> {
    match ipam_type(ipam_conf)? {
        HOST_LOCAL => host_local_del(Some(ipam_conf), req).await,
        STATIC => Ok(()),
        other => exec_external(other, Command::Del, ipam_conf, req)
            .await
            .map(|_| ()),
    }
}

/// CHECK: host-local checks the allocation exists, static compares with prevResult.
pub async fn ipam_check(ipam_conf: &Value, req: &Request) -> Result<()> {
    match ipam_type(ipam_conf)? {
        HOST_LOCAL => host_local_check(Some(ipam_conf), req).await,
        STATIC => static_check(Some(ipam_conf), req),
        other => exec_external(other, Command::Check, ipam_conf, req)
            .await
            .map(|_| ()),
    }
}

/// STATUS: host-local checks its store is writable; static is always ready.
pub async fn ipam_status(ipam_conf: &Value, req: &Request) -> Result<()> {
    match ipam_type(ipam_conf)? {
        HOST_LOCAL => host_local_status(Some(ipam_conf), req).await,
        STATIC => static_status(Some(ipam_conf), req),
        other => exec_external(other, Command::Status, ipam_conf, req)
            .await
            .map(|_| ()),
    }
}

/// GC: host-local releases every address whose attachment is not in `gc`.
pub async fn ipam_gc(ipam_conf: &Value, req: &Request, gc: &GcRequest) -> Result<()> {
    match ipam_type(ipam_conf)? {
        HOST_LOCAL => host_local_gc(Some(ipam_conf), req, gc).await,
        STATIC => Ok(()),
        other => exec_external(other, Command::Gc, ipam_conf, req)
            .await
            .map(|_| ()),
    }
}

async fn host_local_add(ipam: Option<&Value>, req: &Request) -> Result<NetworkResult> {
    let cfg = HostLocalConfig::parse(&req.config, ipam, &req.env)?;
    let (id, ifname) = (req.env.container_id.clone(), req.env.ifname.clone());
    let mut result = blocking(move || host_local::add(&cfg, &id, &ifname)).await?;
    result.cni_version = req.version;
    Ok(result)
}

async fn host_local_del(ipam: Option<&Value>, req: &Request) -> Result<()> {
    let loc = host_local::location(&req.config, ipam)?;
    let (id, ifname) = (req.env.container_id.clone(), req.env.ifname.clone());
    blocking(move || host_local::del(&loc, &id, &ifname)).await
}

async fn host_local_check(ipam: Option<&Value>, req: &Request) -> Result<()> {
    let cfg = HostLocalConfig::parse(&req.config, ipam, &req.env)?;
    let (id, ifname) = (req.env.container_id.clone(), req.env.ifname.clone());
    blocking(move || host_local::check(&cfg, &id, &ifname)).await
}

async fn host_local_status(ipam: Option<&Value>, req: &Request) -> Result<()> {
    let cfg = HostLocalConfig::parse(&req.config, ipam, &req.env)?;
    let loc = host_local::StoreLocation {
        name: cfg.name,
        data_dir: cfg.data_dir,
    };
    blocking(move || host_local::status(&loc)).await
}

async fn host_local_gc(ipam: Option<&Value>, req: &Request, gc: &GcRequest) -> Result<()> {
    let loc = host_local::location(&req.config, ipam)?;
    let gc = gc.clone();
    blocking(move || host_local::gc(&loc, &gc).map(|_| ())).await
}

fn static_add(ipam: Option<&Value>, req: &Request) -> Result<NetworkResult> {
    let cfg = StaticConfig::parse(&req.config, ipam, &req.env)?;
    let mut result = cfg.result();
    result.cni_version = req.version;
    Ok(result)
}

fn static_check(ipam: Option<&Value>, req: &Request) -> Result<()> {
    let cfg = StaticConfig::parse(&req.config, ipam, &req.env)?;
    cfg.check(&req.config, &req.env.ifname)
        .map_err(CniError::from)
}

fn static_status(ipam: Option<&Value>, req: &Request) -> Result<()> {
    StaticConfig::parse(&req.config, ipam, &req.env)?;
    Ok(())
}

/// The `host-local` binary: reads `ipam` whatever its `type` says, as the reference does.
#[derive(Debug, Default)]
pub struct HostLocalPlugin;

impl Plugin for HostLocalPlugin {
    fn name(&self) -> &'static str {
        HOST_LOCAL
    }

    async fn add(&self, req: &Request) -> Result<NetworkResult> {
        host_local_add(req.config.ipam.as_ref(), req).await
    }

    async fn del(&self, req: &Request) -> Result<()> {
        host_local_del(req.config.ipam.as_ref(), req).await
    }

    async fn check(&self, req: &Request) -> Result<()> {
        host_local_check(req.config.ipam.as_ref(), req).await
    }

    async fn status(&self, req: &Request) -> Result<()> {
        host_local_status(req.config.ipam.as_ref(), req).await
    }

    async fn gc(&self, req: &Request, gc: &GcRequest) -> Result<()> {
        host_local_gc(req.config.ipam.as_ref(), req, gc).await
    }
}

/// The `static` binary.
#[derive(Debug, Default)]
pub struct StaticPlugin;

impl Plugin for StaticPlugin {
    fn name(&self) -> &'static str {
        STATIC
    }

    async fn add(&self, req: &Request) -> Result<NetworkResult> {
        static_add(req.config.ipam.as_ref(), req)
    }

    async fn del(&self, _req: &Request) -> Result<()> {
        Ok(())
    }

    async fn check(&self, req: &Request) -> Result<()> {
        static_check(req.config.ipam.as_ref(), req)
    }

    async fn status(&self, req: &Request) -> Result<()> {
        static_status(req.config.ipam.as_ref(), req)
    }
}
