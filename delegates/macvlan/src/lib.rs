//! The macvlan delegate, drop-in for the reference macvlan plugin.
