//! The ipvlan delegate, drop-in for the reference ipvlan plugin.
