//! Network namespaces and rtnetlink link operations used by every multinet delegate.
