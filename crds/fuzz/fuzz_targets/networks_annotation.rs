//! `k8s.v1.cni.cncf.io/networks`: never panics, and what parses formats back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use multinet_crds::{format_networks, parse_networks};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(selections) = parse_networks(text) {
        let formatted = format_networks(&selections);
        match parse_networks(&formatted) {
            Ok(again) => assert_eq!(again, selections, "format of {text:?} is {formatted:?}"),
            Err(e) => panic!("format of {text:?} is {formatted:?}, which does not parse: {e}"),
        }
    }
});
