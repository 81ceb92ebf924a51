//! The meta-plugin's one error type, mapped to CNI error codes in `to_cni`.

use std::path::PathBuf;

use multinet_cni::{CniError, ErrorCode};

/// The underlying failure an error keeps as its source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("{0}")]
    Decode(String),
    /// A CNI_* variable (or a key of CNI_ARGS) that is missing or unusable; the message names it.
    #[error("{0}")]
    Env(String),
    #[error("{0}")]
    InvalidConfig(String),
    /// A pod annotation that cannot be used; the message names the annotation and the element.
    #[error("pod {pod}: {msg}")]
    BadAnnotation { pod: String, msg: String },
    #[error("network {network}: {msg}")]
    Network { network: String, msg: String },
    #[error("pod {pod}: {msg}")]
    Pod { pod: String, msg: String },
    #[error("Kubernetes API: {0}")]
    Api(String),
    #[error("attachment store {}: {source}", path.display())]
    Store {
        path: PathBuf,
        #[source]
        source: BoxError,
    },
    #[error("attachment record {} is corrupt: {msg}", path.display())]
    CorruptRecord { path: PathBuf, msg: String },
    /// A delegate failed; keeps the delegate's own CNI error (code and message).
    #[error("network {network} (delegate {delegate}, interface {ifname}): {source}")]
    Delegate {
        network: String,
        delegate: String,
        ifname: String,
        source: Box<CniError>,
    },
    /// A CNI protocol step of the call itself failed (reading or converting a result): its code
    /// is kept.
    #[error("{0}")]
    Cni(#[source] Box<CniError>),
    /// Several failures, e.g. every attachment a DEL could not remove.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Many(Vec<MetaError>),
    #[error("{0}")]
    NotReady(String),
    /// Another call for the same container still runs.
    #[error("{0}")]
    Busy(String),
    /// Reading or writing a node file, a socket or the kernel failed: what was being done, and
    /// the failure itself.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: BoxError,
    },
    #[error("{0}")]
    Internal(String),
}

impl MetaError {
    pub fn network(network: impl Into<String>, msg: impl Into<String>) -> Self {
        MetaError::Network {
            network: network.into(),
            msg: msg.into(),
        }
    }

    /// An [`MetaError::Io`]: `what` was being done when `source` happened.
    pub fn io(what: impl std::fmt::Display, source: impl Into<BoxError>) -> Self {
        MetaError::Io {
            what: what.to_string(),
            source: source.into(),
        }
    }

    /// A [`MetaError::Store`] about `path`.
    pub fn store(path: impl Into<PathBuf>, source: impl Into<BoxError>) -> Self {
        MetaError::Store {
            path: path.into(),
            source: source.into(),
        }
    }

    /// The CNI error the runtime sees.
    pub fn to_cni(&self) -> CniError {
        let code = match self {
            MetaError::Decode(_) => ErrorCode::Decode,
            MetaError::Env(_) => ErrorCode::InvalidEnvironment,
            MetaError::InvalidConfig(_)
            | MetaError::BadAnnotation { .. }
            | MetaError::Network { .. } => ErrorCode::InvalidConfig,
            MetaError::Pod { .. } => ErrorCode::InvalidConfig,
            MetaError::Api(_) => ErrorCode::TryAgainLater,
            MetaError::Store { .. } | MetaError::CorruptRecord { .. } | MetaError::Io { .. } => {
                ErrorCode::Io
            }
            MetaError::Delegate { source, .. } | MetaError::Cni(source) => source.code,
            MetaError::Many(errors) => errors
                .first()
                .map(|e| e.to_cni().code)
                .unwrap_or(ErrorCode::Internal),
            MetaError::NotReady(_) => ErrorCode::NotAvailable,
            MetaError::Busy(_) => ErrorCode::TryAgainLater,
            MetaError::Internal(_) => ErrorCode::Internal,
        };
        CniError::new(code, self.to_string())
    }
}

impl From<CniError> for MetaError {
    fn from(e: CniError) -> Self {
        MetaError::Cni(Box::new(e))
    }
}

impl From<MetaError> for CniError {
    fn from(e: MetaError) -> Self {
        e.to_cni()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn cni_errors_keep_their_code_and_source() {
        let e = MetaError::from(CniError::new(ErrorCode::IncompatibleVersion, "no 0.1.0"));
        let cni = e.to_cni();
        assert_eq!(cni.code, ErrorCode::IncompatibleVersion);
        assert_eq!(cni.msg, e.to_string());
        assert!(e.source().is_some());

        let delegate = MetaError::Delegate {
            network: "team/a".into(),
            delegate: "macvlan".into(),
            ifname: "net1".into(),
            source: Box::new(CniError::new(ErrorCode::ADDRESS_IN_USE, "taken")),
        };
        assert_eq!(delegate.to_cni().code.code(), 100);
        assert!(delegate.source().is_some());

        let io = MetaError::io(
            "reading /x",
            std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        );
        assert_eq!(io.to_cni().code, ErrorCode::Io);
        assert!(io.to_string().starts_with("reading /x: "), "{io}");
        let kind = io
            .source()
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .map(std::io::Error::kind);
        assert_eq!(kind, Some(std::io::ErrorKind::PermissionDenied));
        let store = MetaError::store("/s", std::io::Error::from(std::io::ErrorKind::NotFound));
        assert!(store.source().is_some());
    }
}
