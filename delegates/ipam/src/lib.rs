//! host-local and static IPAM, drop-in for the reference plugins.
