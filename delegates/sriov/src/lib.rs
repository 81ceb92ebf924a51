//! The SR-IOV delegate and VF allocator over sysfs and PCI.
