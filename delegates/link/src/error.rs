//! The crate's one error type, and the one place its CNI codes are chosen.
//!
//! | variant | code | why |
//! |---|---|---|
//! | `InvalidKey` | 7 | a config key has a bad value; the message names the key |
//! | `MissingPrevResult` | 7 | CHECK (or a chained ADD) needs `prevResult` |
//! | `Netns` | 8 | CNI_NETNS cannot be opened as a network namespace |
//! | `IfnameTaken` | 4 | CNI_IFNAME names an interface that exists in the netns |
//! | `Kernel` | 5 | the kernel refused a netlink request or a sysctl write |
//! | `Ipam` | the IPAM plugin's | passed on unchanged |
//! | `Protocol` | the CNI layer's | e.g. 6 for an undecodable prevResult |
//! | `Mismatch` | 101 | CHECK found state recorded by ADD missing or different (multinet's "not found") |

use multinet_cni::{CniError, ErrorCode};

/// Any error from the kernel side (netlink, sysctl files).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Errors of the macvlan and ipvlan drivers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A config key has a value the plugin cannot use.
    #[error("{plugin}: key {key:?}: {msg}")]
    InvalidKey {
        plugin: &'static str,
        key: String,
        msg: String,
    },

    /// The verb needs `prevResult` and the config has none.
    #[error("{plugin}: key \"prevResult\": required for {verb} but missing")]
    MissingPrevResult {
        plugin: &'static str,
        verb: &'static str,
    },

    /// CNI_NETNS does not name a usable network namespace.
    #[error("{plugin}: CNI_NETNS {path:?}: {source}")]
    Netns {
        plugin: &'static str,
        path: String,
        #[source]
        source: Box<multinet_netlink::Error>,
    },

    /// CNI_IFNAME is in use in the container's namespace.
    #[error("{plugin}: CNI_IFNAME: interface {ifname:?} exists already in {netns}")]
    IfnameTaken {
        plugin: &'static str,
        ifname: String,
        netns: String,
    },

    /// A netlink request or sysctl write failed.
    #[error("{plugin}: {op}: {source}")]
    Kernel {
        plugin: &'static str,
        op: String,
        #[source]
        source: BoxError,
    },

    /// The IPAM plugin failed; its code is kept.
    #[error("{plugin}: IPAM {verb}: {}", source.msg)]
    Ipam {
        plugin: &'static str,
        verb: &'static str,
        #[source]
        source: CniError,
    },

    /// An error from the CNI layer (e.g. an unreadable prevResult); its code is kept.
    #[error("{plugin}: {}", source.msg)]
    Protocol {
        plugin: &'static str,
        #[source]
        source: CniError,
    },

    /// CHECK found differences between the container and prevResult (every one is listed).
    #[error("{plugin}: CHECK: {}", .differences.join("; "))]
    Mismatch {
        plugin: &'static str,
        differences: Vec<String>,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The CNI code this error is reported with.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidKey { .. } | Error::MissingPrevResult { .. } => ErrorCode::InvalidConfig,
            Error::Netns { .. } => ErrorCode::InvalidNetns,
            Error::IfnameTaken { .. } => ErrorCode::InvalidEnvironment,
            Error::Kernel { .. } => ErrorCode::Io,
            Error::Ipam { source, .. } | Error::Protocol { source, .. } => source.code,
            Error::Mismatch { .. } => ErrorCode::CHECK_FAILED,
        }
    }

    /// The key or variable the error is about, put in the error's `details`.
    fn details(&self) -> String {
        match self {
            Error::InvalidKey { key, .. } => format!("key {key:?}"),
            Error::MissingPrevResult { .. } => "key \"prevResult\"".into(),
            Error::Netns { .. } => "CNI_NETNS".into(),
            Error::IfnameTaken { .. } => "CNI_IFNAME".into(),
            Error::Ipam { source, .. } | Error::Protocol { source, .. } => source.details.clone(),
            Error::Kernel { .. } | Error::Mismatch { .. } => String::new(),
        }
    }
}

impl From<Error> for CniError {
    fn from(e: Error) -> CniError {
        CniError::new(e.code(), e.to_string()).with_details(e.details())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_messages_name_the_key() {
        let e = Error::InvalidKey {
            plugin: "macvlan",
            key: "mode".into(),
            msg: "unknown mode \"x\"".into(),
        };
        let c = CniError::from(e);
        assert_eq!(c.code.code(), 7);
        assert!(c.msg.contains("\"mode\""), "{}", c.msg);
        assert_eq!(c.details, "key \"mode\"");

        let m = CniError::from(Error::Mismatch {
            plugin: "ipvlan",
            differences: vec!["a".into(), "b".into()],
        });
        assert_eq!(m.code, ErrorCode::CHECK_FAILED);
        assert_eq!(m.msg, "ipvlan: CHECK: a; b");

        let i = CniError::from(Error::Ipam {
            plugin: "macvlan",
            verb: "ADD",
            source: CniError::try_again("no free address").with_details("range 0"),
        });
        assert_eq!(i.code.code(), 11);
        assert_eq!(i.details, "range 0");
        assert!(i.msg.starts_with("macvlan: IPAM ADD: no free address"));
    }
}
