//! A netlink route socket bound to one network namespace, driven by the caller's tokio runtime.

use rtnetlink::Handle;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::netns::{Netns, run_in_netns};

/// An rtnetlink connection to one network namespace.
///
/// The socket is created inside the target namespace (on a short-lived thread, see
/// [`run_in_netns`]) and stays bound to it; every request made through this handle acts in
/// that namespace, whatever thread the caller runs on. The connection task runs on the
/// caller's tokio runtime (current-thread runtimes work) and is stopped when the handle is
/// dropped.
///
/// The runtime must have IO enabled (and time, for [`NetlinkHandle::wait_for_dad`]):
/// `tokio::runtime::Builder::new_current_thread().enable_all()`.
#[derive(Debug)]
pub struct NetlinkHandle {
    handle: Handle,
    connection: JoinHandle<()>,
    netns: Netns,
}

impl NetlinkHandle {
    /// A handle on the namespace `ns`. Must be called within a tokio runtime context.
    pub fn for_netns(ns: &Netns) -> Result<Self> {
        let runtime = runtime()?;
        let (connection, handle, _) = run_in_netns(ns, || {
            // Registering the socket with the runtime's IO driver works from any thread.
            let _entered = runtime.enter();
            rtnetlink::new_connection()
        })
        .map_err(|e| match e {
            // Only the runtime panics here: when its IO driver is disabled.
            Error::Panicked { message, .. } => Error::Runtime(message),
            other => other,
        })?
        .map_err(|e| Error::io(format!("open netlink socket in {}", ns.path().display()), e))?;
        Ok(NetlinkHandle {
            handle,
            connection: runtime.spawn(connection),
            netns: ns.try_clone()?,
        })
    }

    /// A handle on the calling thread's current namespace. Must be called within a tokio
    /// runtime context.
    pub fn current() -> Result<Self> {
        // Through a thread like any other namespace, so a runtime without IO gives an error
        // (tokio panics when registering the socket; the thread turns that into an error).
        Self::for_netns(&Netns::current()?)
    }

    /// The underlying rtnetlink handle, for requests this crate does not wrap. It stops
    /// working when this `NetlinkHandle` is dropped.
    pub fn raw(&self) -> &Handle {
        &self.handle
    }

    /// The namespace this handle acts in.
    pub fn netns(&self) -> &Netns {
        &self.netns
    }
}

impl Drop for NetlinkHandle {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

fn runtime() -> Result<tokio::runtime::Handle> {
    tokio::runtime::Handle::try_current().map_err(|e| Error::Runtime(e.to_string()))
}
