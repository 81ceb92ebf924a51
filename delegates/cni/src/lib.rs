//! The CNI protocol: config and result types for 0.3.0-1.1.0, environment, errors, plugin entry point, running external plugins.
