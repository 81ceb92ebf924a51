//! The multinet meta CNI plugin.
