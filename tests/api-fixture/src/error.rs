//! The crate's one error type.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Load { path: PathBuf, message: String },
    #[error("object not accepted: {0}")]
    Object(String),
    #[error("generating the TLS certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("configuring TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error("serializing: {0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error("the fixture's server thread has stopped")]
    ServerGone,
}

impl FixtureError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        FixtureError::Io {
            context: context.into(),
            source,
        }
    }
}
