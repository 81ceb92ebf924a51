//! `v1.multus-cni.io/default-network`: never panics, and agrees with the list parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use multinet_crds::{parse_default_network, parse_networks};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match (parse_default_network(text), parse_networks(text)) {
        (Ok(one), Ok(list)) => assert_eq!(list, vec![one]),
        (Ok(_), Err(e)) => panic!("default-network accepted {text:?}, networks refused: {e}"),
        (Err(_), Ok(list)) => assert_ne!(list.len(), 1, "{text:?}"),
        (Err(_), Err(_)) => {}
    }
});
