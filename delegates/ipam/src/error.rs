//! The crate's error type and its mapping to CNI error codes (the only place it happens).

use multinet_cni::{CniError, ErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    /// A config key (or a CNI_ARGS / args / runtimeConfig value) is invalid: code 7.
    #[error("{key}: {msg}")]
    Config { key: String, msg: String },
    /// No free address in a range: code 11 (addresses free up as pods go away).
    #[error("{0}")]
    Exhausted(String),
    /// The requested address is taken, or this attachment already holds one: code 100.
    #[error("{0}")]
    AddressInUse(String),
    /// CHECK found no allocation: code 101.
    #[error("{0}")]
    NotFound(String),
    /// STATUS: the store cannot be written: code 50.
    #[error("{0}")]
    NotAvailable(String),
    /// A file operation failed: code 5.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// An error that already has its CNI code (version gates, external plugins).
    #[error(transparent)]
    Cni(#[from] CniError),
}

impl IpamError {
    pub fn config(key: impl Into<String>, msg: impl Into<String>) -> Self {
        IpamError::Config {
            key: key.into(),
            msg: msg.into(),
        }
    }

    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        IpamError::Io {
            what: what.into(),
            source,
        }
    }
}

impl From<IpamError> for CniError {
    fn from(e: IpamError) -> CniError {
        let msg = e.to_string();
        match e {
            IpamError::Config { .. } => CniError::new(ErrorCode::InvalidConfig, msg),
            IpamError::Exhausted(_) => CniError::new(ErrorCode::TryAgainLater, msg),
            IpamError::AddressInUse(_) => CniError::new(ErrorCode::ADDRESS_IN_USE, msg),
            IpamError::NotFound(_) => CniError::new(ErrorCode::CHECK_FAILED, msg),
            IpamError::NotAvailable(_) => CniError::new(ErrorCode::NotAvailable, msg),
            IpamError::Io { .. } => CniError::new(ErrorCode::Io, msg),
            IpamError::Cni(c) => c,
        }
    }
}

pub type IpamResult<T> = std::result::Result<T, IpamError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        let cases: Vec<(IpamError, u32)> = vec![
            (IpamError::config("ipam.subnet", "bad"), 7),
            (IpamError::Exhausted("x".into()), 11),
            (IpamError::AddressInUse("x".into()), 100),
            (IpamError::NotFound("x".into()), 101),
            (IpamError::NotAvailable("x".into()), 50),
            (IpamError::io("write", std::io::Error::other("disk")), 5),
            (IpamError::Cni(CniError::incompatible_version("v")), 1),
        ];
        for (e, code) in cases {
            assert_eq!(CniError::from(e).code.code(), code);
        }
        let c = CniError::from(IpamError::config("ipam.subnet", "bad CIDR"));
        assert_eq!(c.msg, "ipam.subnet: bad CIDR");
    }
}
