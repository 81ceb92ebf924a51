//! host-local's store attacked and interrupted, run under umask 000: modes stay explicit (the
//! reference's, the lock private), files another uid could have written are never trusted,
//! nothing is echoed from a file, and what a dead writer left (an empty address file, a temp
//! file) is free and cleaned by ADD, DEL and GC. Plus `release_container` across networks.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::*;
use multinet_ipam::host_local::release_container;
use serde_json::{Value, json};

fn umask_000() {
    // SAFETY: umask only changes this process's (and its children's) file creation mask.
    unsafe { libc::umask(0) };
}

/// A scratch directory as a node's /var/lib/cni is: root's, 0700 (tempfile honours the umask).
fn private_tempdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

fn conf(data_dir: &Path, subnet: &str) -> Value {
    json!({"cniVersion": "1.1.0", "name": "net", "type": "host-local",
           "ipam": {"type": "host-local", "subnet": subnet, "dataDir": data_dir}})
}

fn address(o: &Outcome) -> String {
    assert!(o.ok, "{}", o.stdout);
    o.stdout["ips"][0]["address"].as_str().unwrap().to_string()
}

/// Temp files (ours or older versions') in a directory.
fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|n| n.starts_with('.') && n.contains(".tmp"))
        .collect()
}

fn gc_conf(data_dir: &Path, subnet: &str, valid: Value) -> Value {
    let mut c = conf(data_dir, subnet);
    c["cni.dev/valid-attachments"] = valid;
    c
}

/// GC that keeps only c2's eth0 in the network; it must succeed.
fn gc_keeping_c2(bin: &Path, root: &Path, subnet: &str) -> Outcome {
    let valid = json!([{"containerID": "c2", "ifname": "eth0"}]);
    let gc = run(bin, &Call::new("GC", ""), &gc_conf(root, subnet, valid));
    assert!(gc.ok, "{}", gc.stdout);
    gc
}

/// ADD of c3, refused with code 5 and a message naming `path`; returns the message.
fn add_refused_naming(bin: &Path, conf: &Value, path: &Path) -> String {
    let add = run(bin, &Call::new("ADD", "c3"), conf);
    assert_eq!(add.code(), 5, "{}", add.stdout);
    let msg = add.msg();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    msg
}

#[test]
fn modes_are_the_references_whatever_the_umask_and_the_lock_is_private() {
    umask_000();
    let dir = private_tempdir();
    let ours_root = dir.path().join("ours/data");
    let a = run(
        &ours("host-local"),
        &Call::new("ADD", "c1"),
        &conf(&ours_root, "10.80.0.0/24"),
    );
    assert_eq!(address(&a), "10.80.0.2/24");
    let net = ours_root.join("net");
    assert_eq!(mode(&ours_root), 0o755, "dataDir");
    assert_eq!(mode(&net), 0o755, "network dir");
    assert_eq!(mode(&net.join("10.80.0.2")), 0o644);
    assert_eq!(mode(&net.join("last_reserved_ip.0")), 0o644);
    // Anyone who could open the lock could flock it and stall every ADD of the network.
    assert_eq!(mode(&net.join("lock")), 0o600);
    assert!(temp_files(&net).is_empty(), "{:?}", temp_files(&net));
    assert_eq!(
        std::fs::read(net.join("10.80.0.2")).unwrap(),
        b"c1\r\neth0",
        "the reference's content"
    );
    // The reference, under the same umask, writes the same modes (its lock is 0750).
    let Some(reference) = theirs("host-local") else {
        return;
    };
    let theirs_root = dir.path().join("theirs/data");
    let r = run(
        &reference,
        &Call::new("ADD", "c1"),
        &with_version(&conf(&theirs_root, "10.80.0.0/24"), "1.0.0"),
    );
    assert_eq!(address(&r), "10.80.0.2/24");
    let their_net = theirs_root.join("net");
    for f in ["", "10.80.0.2", "last_reserved_ip.0"] {
        assert_eq!(mode(&their_net.join(f)), mode(&net.join(f)), "{f:?}");
    }
    // And each releases what the other wrote.
    let del = run(
        &ours("host-local"),
        &Call::new("DEL", "c1"),
        &conf(&theirs_root, "10.80.0.0/24"),
    );
    assert!(del.ok, "{}", del.stdout);
    assert!(ip_files(&their_net).is_empty());
}

#[test]
fn an_empty_reservation_left_by_a_dead_writer_is_free_and_cleaned() {
    umask_000();
    let dir = private_tempdir();
    let root = dir.path();
    let subnet = "10.81.0.0/24";
    let bin = ours("host-local");
    assert_eq!(
        address(&run(&bin, &Call::new("ADD", "c1"), &conf(root, subnet))),
        "10.81.0.2/24"
    );
    let net = root.join("net");
    // A writer died between creating 10.81.0.3 and writing it, and another mid-write of a
    // temp file (a dead pid).
    let plant_empty = |ip: &str| {
        let p = net.join(ip);
        std::fs::File::create(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    };
    plant_empty("10.81.0.3");
    std::fs::write(net.join(".10.81.0.4.tmp-999999999-0"), b"c9\r\neth0").unwrap();
    std::fs::write(net.join(".last_reserved_ip.0.tmp"), b"10.81.0.9").unwrap();
    // ADD: the empty file is a free address.
    assert_eq!(
        address(&run(&bin, &Call::new("ADD", "c2"), &conf(root, subnet))),
        "10.81.0.3/24"
    );
    assert!(temp_files(&net).is_empty(), "{:?}", temp_files(&net));
    assert_eq!(std::fs::read(net.join("10.81.0.3")).unwrap(), b"c2\r\neth0");
    // DEL (of the container whose write died, or any) cleans an empty file.
    plant_empty("10.81.0.9");
    let del = run(&bin, &Call::new("DEL", "c-died"), &conf(root, subnet));
    assert!(del.ok, "{}", del.stdout);
    assert_eq!(ip_files(&net), ["10.81.0.2", "10.81.0.3"]);
    // GC too, and it releases everything not listed.
    plant_empty("10.81.0.10");
    gc_keeping_c2(&bin, root, subnet);
    assert_eq!(ip_files(&net), ["10.81.0.3"]);
}

#[test]
fn store_files_another_uid_could_have_written_are_never_trusted() {
    umask_000();
    let dir = private_tempdir();
    let root = dir.path();
    let subnet = "10.82.0.0/29";
    let bin = ours("host-local");
    address(&run(&bin, &Call::new("ADD", "c1"), &conf(root, subnet)));
    let net = root.join("net");
    // A world-writable reservation naming a victim: not the victim's (DEL and GC leave it, CHECK
    // does not count it), and its address is never handed out.
    let loose = net.join("10.82.0.3");
    std::fs::write(&loose, b"c-victim\r\neth0").unwrap();
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o666)).unwrap();
    // A symlink to a secret, named like an address.
    let secret = root.join("secret");
    std::fs::write(&secret, b"SECRET-CONTENT").unwrap();
    std::os::unix::fs::symlink(&secret, net.join("10.82.0.4")).unwrap();
    let check = run(&bin, &Call::new("CHECK", "c-victim"), &conf(root, subnet));
    assert_eq!(check.code(), 101, "{}", check.stdout);
    let mut outputs = vec![check.stdout.to_string()];
    for (cmd, id) in [("DEL", "c-victim"), ("ADD", "c2")] {
        let o = run(&bin, &Call::new(cmd, id), &conf(root, subnet));
        outputs.push(o.stdout.to_string());
        if cmd == "ADD" {
            assert_eq!(
                address(&o),
                "10.82.0.5/29",
                "the planted addresses stay taken"
            );
        }
    }
    outputs.push(gc_keeping_c2(&bin, root, subnet).stdout.to_string());
    assert!(loose.exists() && net.join("10.82.0.4").exists());
    assert_eq!(std::fs::read(&secret).unwrap(), b"SECRET-CONTENT");
    for o in &outputs {
        assert!(
            !o.contains("SECRET-CONTENT"),
            "a file's content echoed: {o}"
        );
    }
    assert_eq!(ip_files(&net), ["10.82.0.3", "10.82.0.4", "10.82.0.5"]);

    // A network directory others may write: refused (code 5 naming it), nothing written.
    std::fs::set_permissions(&net, std::fs::Permissions::from_mode(0o777)).unwrap();
    let before = snapshot(root);
    let msg = add_refused_naming(&bin, &conf(root, subnet), &net);
    assert!(msg.contains("writable by other users"), "{msg}");
    assert_eq!(snapshot(root), before);
    std::fs::set_permissions(&net, std::fs::Permissions::from_mode(0o755)).unwrap();
    // A lock file another uid owns: refused, naming it.
    let lock = net.join("lock");
    std::os::unix::fs::chown(&lock, Some(65534), Some(65534)).unwrap();
    let msg = add_refused_naming(&bin, &conf(root, subnet), &lock);
    assert!(msg.contains("owned by uid 65534"), "{msg}");
    assert_eq!(snapshot(root), before);
    // A dataDir that is a symlink is not followed.
    let link_root: PathBuf = dir.path().join("link-root");
    std::os::unix::fs::symlink(root.join("elsewhere-missing"), &link_root).unwrap();
    add_refused_naming(&bin, &conf(&link_root, subnet), &link_root);
    assert!(!root.join("elsewhere-missing").exists());
}

#[test]
fn release_container_clears_every_network_of_one_container() {
    umask_000();
    let dir = private_tempdir();
    let root = dir.path();
    let bin = ours("host-local");
    let net_conf = |name: &str, subnet: &str| {
        let mut c = conf(root, subnet);
        c["name"] = json!(name);
        c
    };
    address(&run(
        &bin,
        &Call::new("ADD", "c1"),
        &net_conf("a", "10.83.0.0/24"),
    ));
    address(&run(
        &bin,
        &Call::new("ADD", "c2"),
        &net_conf("a", "10.83.0.0/24"),
    ));
    address(&run(
        &bin,
        &Call::new("ADD", "c1").ifname("net1"),
        &net_conf("b", "10.84.0.0/24"),
    ));
    // An old-format file (container ID only) and an empty one from a dead writer.
    std::fs::write(root.join("b/10.84.0.50"), b"c1").unwrap();
    std::fs::set_permissions(
        root.join("b/10.84.0.50"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    std::fs::File::create(root.join("b/10.84.0.51")).unwrap();
    // A symlinked network directory is not followed.
    let outside = private_tempdir();
    std::fs::write(outside.path().join("10.85.0.2"), b"c1\r\neth0").unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("c")).unwrap();

    assert_eq!(release_container(root, "c1"), 3);
    assert_eq!(
        ip_files(&root.join("a")),
        ["10.83.0.3"],
        "c2 keeps its address"
    );
    assert!(
        ip_files(&root.join("b")).is_empty(),
        "the empty file went too"
    );
    assert!(outside.path().join("10.85.0.2").exists());
    assert_eq!(release_container(root, "c1"), 0);
    assert_eq!(release_container(&root.join("missing"), "c1"), 0);
    for net in ["a", "b"] {
        assert!(temp_files(&root.join(net)).is_empty());
    }
}
