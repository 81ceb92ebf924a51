//! The `ipvlan` CNI plugin binary.

fn main() {
    multinet_cni::run_main(multinet_ipvlan::IpvlanPlugin::new())
}
