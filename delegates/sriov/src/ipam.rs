//! IPAM for the delegate: the `ipam` section of the config, run for the calling request.

use multinet_cni::{
    Command, DEFAULT_EXEC_TIMEOUT, ExecRequest, NetworkResult, Request, exec_plugin, find_plugin,
};
use serde_json::Value;

use crate::error::{Result, SriovError};

async fn run(command: Command, ipam: &Value, req: &Request) -> Result<Option<NetworkResult>> {
    let kind = ipam
        .get("type")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| SriovError::config("ipam.type", "is missing or not a non-empty string"))?;
    let path = find_plugin(kind, &req.env.path).map_err(SriovError::Ipam)?;
    exec_plugin(
        &path,
        &ExecRequest {
            command,
            env: &req.env,
            extra_env: &req.extra_env,
            stdin: &req.stdin,
            timeout: DEFAULT_EXEC_TIMEOUT,
        },
    )
    .await
    .map_err(SriovError::Ipam)
}

/// ADD: the addresses for the attachment.
pub async fn add(ipam: &Value, req: &Request) -> Result<NetworkResult> {
    run(Command::Add, ipam, req)
        .await?
        .ok_or_else(|| SriovError::Ipam(multinet_cni::CniError::decode("IPAM returned no result")))
}

/// DEL: releases the attachment's addresses; repeated DELs succeed.
pub async fn del(ipam: &Value, req: &Request) -> Result<()> {
    run(Command::Del, ipam, req).await.map(drop)
}

/// CHECK: the IPAM plugin's own check.
pub async fn check(ipam: &Value, req: &Request) -> Result<()> {
    run(Command::Check, ipam, req).await.map(drop)
}
