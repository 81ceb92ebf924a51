//! The `macvlan` CNI plugin binary.

fn main() {
    multinet_cni::run_main(multinet_macvlan::MacvlanPlugin::new())
}
