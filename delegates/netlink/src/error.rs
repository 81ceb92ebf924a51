//! The crate's one error type. Callers match on [`Error::NotFound`] and [`Error::AlreadyExists`]
//! (e.g. to make DEL tolerant), everything else is reported as is.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How a link was named in the request that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkRef {
    /// By interface index.
    Index(u32),
    /// By interface name.
    Name(String),
}

impl fmt::Display for LinkRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkRef::Index(i) => write!(f, "link with index {i}"),
            LinkRef::Name(n) => write!(f, "link {n}"),
        }
    }
}

/// What was not found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// A network interface.
    Link(LinkRef),
    /// A network namespace path that does not exist.
    Netns(PathBuf),
    /// An address on a link.
    Address {
        /// Index of the link.
        link: u32,
        /// The address with its prefix length.
        address: IpNet,
    },
    /// A route (described as text: destination, gateway, device).
    Route(String),
    /// A virtual function of a physical function.
    Vf {
        /// Index of the PF.
        pf: u32,
        /// VF number.
        vf: u32,
    },
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Missing::Link(l) => l.fmt(f),
            Missing::Netns(p) => write!(f, "network namespace {}", p.display()),
            Missing::Address { link, address } => {
                write!(f, "address {address} on link with index {link}")
            }
            Missing::Route(r) => write!(f, "route {r}"),
            Missing::Vf { pf, vf } => write!(f, "VF {vf} of PF with index {pf}"),
        }
    }
}

/// Errors of namespace and netlink operations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A link, namespace, address, route or VF does not exist.
    #[error("{0} not found")]
    NotFound(Missing),

    /// The object to create exists already (EEXIST).
    #[error("{what} already exists")]
    AlreadyExists {
        /// What the request tried to create.
        what: String,
    },

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

    /// The kernel refused a netlink request.
    #[error("netlink {op} failed: {source}")]
    Netlink {
        /// What was being done, e.g. "set MTU 9000 on link with index 4".
        op: String,
        /// The error returned by rtnetlink.
        #[source]
        source: rtnetlink::Error,
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

    /// A bounded wait ran out.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// The bound.
        after: Duration,
    },

    /// IPv6 duplicate address detection found the address in use.
    #[error("IPv6 duplicate address detection failed for {address} on link with index {link}")]
    DadFailed {
        /// Index of the link.
        link: u32,
        /// The duplicate address.
        address: IpAddr,
    },

    /// No usable tokio runtime (netlink handles need one with IO and time enabled).
    #[error("no tokio runtime with IO enabled in this context: {0}")]
    Runtime(String),
}

impl Error {
    /// True for "nothing there": a missing link, namespace, address, route or VF, and a
    /// namespace that is gone. DEL treats these as success.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound(_) | Error::NetnsGone { .. })
    }

    /// True when the object to create exists already.
    pub fn is_already_exists(&self) -> bool {
        matches!(self, Error::AlreadyExists { .. })
    }

    /// The errno behind the error, when there is one (positive, e.g. `libc::EBUSY`).
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Netlink { source, .. } => netlink_errno(source),
            Error::Io { source, .. } => source.raw_os_error(),
            Error::NotFound(_) | Error::NetnsGone { .. } => Some(libc::ENOENT),
            Error::AlreadyExists { .. } => Some(libc::EEXIST),
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

/// The positive errno carried by a netlink error reply.
pub(crate) fn netlink_errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(msg) => msg.code.map(|c| -c.get()),
        _ => None,
    }
}

/// Maps an rtnetlink error to [`Error`], turning EEXIST into [`Error::AlreadyExists`] and the
/// errnos that mean "no such object" for this request into [`Error::NotFound`].
pub(crate) struct ErrorMap {
    op: String,
    /// What is missing when the kernel answers with one of `missing_errnos`.
    missing: Option<(Missing, &'static [i32])>,
    /// What exists already when the kernel answers EEXIST.
    exists: Option<String>,
}

impl ErrorMap {
    pub(crate) fn new(op: impl Into<String>) -> Self {
        ErrorMap {
            op: op.into(),
            missing: None,
            exists: None,
        }
    }

    pub(crate) fn missing(mut self, what: Missing, errnos: &'static [i32]) -> Self {
        self.missing = Some((what, errnos));
        self
    }

    /// ENODEV means the link is gone.
    pub(crate) fn missing_link(self, link: LinkRef) -> Self {
        self.missing(Missing::Link(link), &[libc::ENODEV])
    }

    pub(crate) fn exists(mut self, what: impl Into<String>) -> Self {
        self.exists = Some(what.into());
        self
    }

    pub(crate) fn map(self, source: rtnetlink::Error) -> Error {
        let errno = netlink_errno(&source);
        if let (Some(code), Some((missing, errnos))) = (errno, &self.missing)
            && errnos.contains(&code)
        {
            return Error::NotFound(missing.clone());
        }
        if errno == Some(libc::EEXIST)
            && let Some(what) = self.exists
        {
            return Error::AlreadyExists { what };
        }
        Error::Netlink {
            op: self.op,
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_core::ErrorMessage;
    use std::num::NonZeroI32;

    fn nl_err(errno: i32) -> rtnetlink::Error {
        let mut msg = ErrorMessage::default();
        msg.code = NonZeroI32::new(-errno);
        rtnetlink::Error::NetlinkError(msg)
    }

    #[test]
    fn enodev_maps_to_link_not_found() {
        let e = ErrorMap::new("set link up")
            .missing_link(LinkRef::Index(7))
            .map(nl_err(libc::ENODEV));
        assert!(matches!(
            e,
            Error::NotFound(Missing::Link(LinkRef::Index(7)))
        ));
        assert!(e.is_not_found());
        assert_eq!(e.errno(), Some(libc::ENOENT));
    }

    #[test]
    fn eexist_maps_to_already_exists_only_when_asked() {
        let e = ErrorMap::new("add link")
            .exists("link mv0")
            .map(nl_err(libc::EEXIST));
        assert!(e.is_already_exists());
        assert_eq!(e.to_string(), "link mv0 already exists");
        let e = ErrorMap::new("set mtu").map(nl_err(libc::EEXIST));
        assert!(matches!(e, Error::Netlink { .. }));
        assert_eq!(e.errno(), Some(libc::EEXIST));
    }

    #[test]
    fn other_errnos_stay_netlink_errors_with_context() {
        let e = ErrorMap::new("rename link with index 3 to x")
            .missing_link(LinkRef::Index(3))
            .map(nl_err(libc::EBUSY));
        assert!(!e.is_not_found());
        assert_eq!(e.errno(), Some(libc::EBUSY));
        assert!(
            e.to_string()
                .starts_with("netlink rename link with index 3 to x failed"),
            "{e}"
        );
    }

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
