//! Test bed shared by multinet's tests: network namespaces, veth pairs, root checks, fake sysfs.
