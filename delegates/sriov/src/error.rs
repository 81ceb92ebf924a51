//! The crate's one error type, and the one place where it becomes a CNI error code.

use std::path::PathBuf;

use multinet_cni::{CniError, ErrorCode};

/// Everything that can go wrong in the SR-IOV delegate and the VF allocator.
#[derive(Debug, thiserror::Error)]
pub enum SriovError {
    /// A config key has a bad value or is missing; `key` names it as the user wrote it.
    #[error("key {key:?}: {msg}")]
    Config { key: String, msg: String },

    /// The config or a state file is not the JSON we expect.
    #[error("{0}")]
    Decode(String),

    /// The VF is held by another attachment (or another call is working on it right now).
    #[error("VF {pci} is busy: {msg}")]
    Busy { pci: String, msg: String },

    /// The VF named by deviceID belongs to a live attachment of another container, or to a
    /// DRA claim the pod is not reserved for (`what` says which). `owner` is for the node's
    /// log only: the message goes to the pod's events and names no other pod or claim.
    #[error("deviceID {device_id} is in use by {what}")]
    InUse {
        device_id: String,
        what: &'static str,
        owner: String,
    },

    /// No free VF in a pool.
    #[error("pool {pool:?} has no free VF ({msg})")]
    PoolExhausted { pool: String, msg: String },

    /// CNI_NETNS cannot be used.
    #[error("netns {}: {msg}", path.display())]
    Netns { path: PathBuf, msg: String },

    /// A file operation failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },

    /// A netlink request was refused or could not be made.
    #[error("{what}: {msg}")]
    Netlink { what: String, msg: String },

    /// The IPAM plugin failed; its error is passed on with its own code.
    #[error("IPAM: {0}")]
    Ipam(CniError),

    /// The attachment exists already (an ADD repeated without DEL).
    #[error("{0}")]
    Duplicate(String),

    /// CHECK found the attachment not as ADD left it.
    #[error("CHECK: {0}")]
    Check(String),

    /// A broken invariant or an unexpected system state.
    #[error("{0}")]
    Internal(String),
}

/// The crate's result type.
pub type Result<T, E = SriovError> = std::result::Result<T, E>;

impl SriovError {
    /// A config error naming `key`.
    pub fn config(key: impl Into<String>, msg: impl Into<String>) -> Self {
        SriovError::Config {
            key: key.into(),
            msg: msg.into(),
        }
    }

    /// A file error saying what was being done.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        SriovError::Io {
            what: what.into(),
            source,
        }
    }

    /// The CNI error code for this error (see multinet-cni's `ErrorCode`).
    pub fn code(&self) -> ErrorCode {
        match self {
            SriovError::Config { .. } => ErrorCode::InvalidConfig,
            SriovError::Decode(_) => ErrorCode::Decode,
            // Both clear up by themselves (a late DEL, a pod ending), so the runtime retries.
            SriovError::Busy { .. }
            | SriovError::InUse { .. }
            | SriovError::PoolExhausted { .. } => ErrorCode::TryAgainLater,
            SriovError::Netns { .. } => ErrorCode::InvalidNetns,
            SriovError::Io { .. } | SriovError::Netlink { .. } => ErrorCode::Io,
            SriovError::Ipam(e) => e.code,
            SriovError::Duplicate(_) => ErrorCode::ADDRESS_IN_USE,
            SriovError::Check(_) => ErrorCode::CHECK_FAILED,
            SriovError::Internal(_) => ErrorCode::Internal,
        }
    }
}

impl From<SriovError> for CniError {
    fn from(e: SriovError) -> CniError {
        match e {
            SriovError::Ipam(inner) => {
                let msg = format!("IPAM: {}", inner.msg);
                CniError::new(inner.code, msg).with_details(inner.details)
            }
            other => CniError::new(other.code(), format!("sriov: {other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_spec() {
        assert_eq!(SriovError::config("vlan", "x").code().code(), 7);
        assert_eq!(
            SriovError::PoolExhausted {
                pool: "p".into(),
                msg: "m".into()
            }
            .code()
            .code(),
            11
        );
        let cni: CniError = SriovError::config("vlanQoS", "bad").into();
        assert_eq!(cni.code.code(), 7);
        assert!(cni.msg.contains("\"vlanQoS\""), "{}", cni.msg);
        let ipam: CniError = SriovError::Ipam(CniError::try_again("no addresses")).into();
        assert_eq!(ipam.code.code(), 11);
    }
}
