//! `sriov`: the SR-IOV CNI plugin binary (a drop-in for the reference `sriov`).

fn main() {
    multinet_cni::run_main(multinet_sriov::SriovPlugin::default())
}
