//! `k8s.v1.cni.cncf.io/network-status`: never panics, and what parses survives a write and a
//! second read unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use multinet_crds::{format_network_status, parse_network_status};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(statuses) = parse_network_status(text) {
        let written = format_network_status(&statuses);
        match parse_network_status(&written) {
            Ok(again) => assert_eq!(again, statuses, "written as {written:?}"),
            Err(e) => panic!("{text:?} was written as {written:?}, which does not parse: {e}"),
        }
    }
});
