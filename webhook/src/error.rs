//! The crate's one error type.

use std::path::PathBuf;

use thiserror::Error;

/// Every failure this crate reports. Admission decisions never fail: they deny with a message.
/// These errors are about the process around them: flags, certificates, the listener, the API.
#[derive(Debug, Error)]
pub enum WebhookError {
    /// A flag or setting is unusable.
    #[error("invalid setting: {0}")]
    Config(String),
    /// A certificate or key file cannot be read or used.
    #[error("TLS material {path}: {reason}")]
    Tls {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the certificate and key.
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
    /// The listener could not be set up.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The Kubernetes API could not be reached or answered with an error.
    #[error("Kubernetes API: {0}")]
    Api(String),
}

impl WebhookError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn tls(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Tls {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
