//! The error of namespace, sysctl and link-tag operations. Callers match on
//! [`Error::NotFound`] (e.g. to make DEL tolerant), everything else is reported as is. Netlink
//! requests answer with [`crate::KernelError`].

use std::fmt;
use std::path::PathBuf;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What was not found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// A network namespace path that does not exist.
    Netns(PathBuf),
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Missing::Netns(p) => write!(f, "network namespace {}", p.display()),
        }
    }
}

/// Errors of namespace and netlink operations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A namespace path does not exist.
    #[error("{0} not found")]
    NotFound(Missing),

    /// The path exists but is not a network namespace.
    #[error("{} is not a network namespace", path.display())]
    NotANetns {
        /// The path given.
        path: PathBuf,
    },

    /// The namespace's file remains but the namespace was unmounted (deleted): there is nothing
    /// left inside it.
    #[error("network namespace {} is gone (its file remains, unmounted)", path.display())]
    NetnsGone {
        /// The path given.
        path: PathBuf,
    },

    /// A system call or file operation failed.
    #[error("{op}: {source}")]
    Io {
        /// What was being done.
        op: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// Code run inside a namespace panicked; the panic is reported here instead of unwinding
    /// into the caller.
    #[error("code run in network namespace {netns} panicked: {message}")]
    Panicked {
        /// The namespace.
        netns: String,
        /// The panic message.
        message: String,
    },

    /// An argument is invalid (bad sysctl key, bad MAC, ...).
    #[error("invalid {what}: {value}")]
    Invalid {
        /// What kind of argument.
        what: &'static str,
        /// The value given.
        value: String,
    },
}

impl Error {
    /// True for "nothing there": a missing namespace path, and a
    /// namespace that is gone. DEL treats these as success.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound(_) | Error::NetnsGone { .. })
    }

    /// The errno behind the error, when there is one (positive, e.g. `libc::EBUSY`).
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Io { source, .. } => source.raw_os_error(),
            Error::NotFound(_) | Error::NetnsGone { .. } => Some(libc::ENOENT),
            _ => None,
        }
    }

    pub(crate) fn io(op: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            op: op.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gone_netns_counts_as_not_found() {
        let e = Error::NetnsGone {
            path: "/run/netns/x".into(),
        };
        assert!(e.is_not_found());
        let e = Error::NotANetns {
            path: "/tmp".into(),
        };
        assert!(!e.is_not_found());
    }
}
