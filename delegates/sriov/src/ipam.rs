//! IPAM for the delegate, in-process through multinet-ipam: host-local and static run inside
//! this process; any other `ipam.type` is executed from CNI_PATH with the caller's config.

use multinet_cni::{NetworkResult, Request};
use serde_json::Value;

use crate::error::{Result, SriovError};

/// ADD: the addresses for the attachment.
pub async fn add(ipam: &Value, req: &Request) -> Result<NetworkResult> {
    multinet_ipam::ipam_add(ipam, req)
        .await
        .map_err(SriovError::Ipam)
}

/// DEL: releases the attachment's addresses; repeated DELs succeed.
pub async fn del(ipam: &Value, req: &Request) -> Result<()> {
    multinet_ipam::ipam_del(ipam, req)
        .await
        .map_err(SriovError::Ipam)
}

/// CHECK: the IPAM's own check.
pub async fn check(ipam: &Value, req: &Request) -> Result<()> {
    multinet_ipam::ipam_check(ipam, req)
        .await
        .map_err(SriovError::Ipam)
}
