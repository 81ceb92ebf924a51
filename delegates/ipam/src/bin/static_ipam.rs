//! The `static` IPAM plugin binary.

fn main() {
    multinet_cni::run_main(multinet_ipam::StaticPlugin)
}
