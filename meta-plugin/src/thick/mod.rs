//! Thick mode: a node daemon (`multinet daemon`) runs every CNI call, and the `multinet` binary the
//! runtime starts only hands the call over (env and stdin in, stdout and exit code back) when its
//! config names the daemon's socket (`daemonSocket`). The daemon's call threads keep their API
//! client and its connections from one call to the next, so a call pays no client set-up or TLS
//! handshake.
//!
//! Unlike Multus's shim, a call never fails because the daemon is away: when nothing listens on
//! the socket, the binary runs the call itself (thin mode). Both keep the same on-disk state
//! under the same locks, so calls of either kind can interleave.

pub mod daemon;
pub mod dra;
pub mod hotplug;
pub mod shim;
pub mod socket;
pub mod watch;
pub mod wire;
