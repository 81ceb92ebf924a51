//! The shape of the tree, checked on the real sources: no file imports another that imports it
//! back, directly or around a loop, in any crate of the workspace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};

use multinet_layout::{Crate, cycles};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every `src/` folder of the workspace's crates.
fn crate_sources() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![workspace()];
    while let Some(dir) = todo.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            if !p.is_dir() || name.starts_with('.') || name == "target" || name == "fuzz" {
                continue;
            }
            if name == "src" && p.parent().is_some_and(|d| d.join("Cargo.toml").exists()) {
                out.push(p);
            } else {
                todo.push(p);
            }
        }
    }
    out.sort();
    out
}

fn rust_files(src: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    for e in fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(src, &p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            let rel = p.strip_prefix(src).unwrap().to_string_lossy().to_string();
            out.push((rel, fs::read_to_string(&p).unwrap()));
        }
    }
}

#[test]
fn no_file_imports_a_file_that_imports_it_back() {
    let sources = crate_sources();
    assert!(sources.len() >= 8, "crates found: {sources:?}");
    let mut found = Vec::new();
    for src in &sources {
        let mut files = Vec::new();
        rust_files(src, src, &mut files);
        let krate = Crate::new(files);
        for cycle in cycles(&krate.edges()) {
            let edges: Vec<String> = krate
                .edges()
                .into_iter()
                .filter(|(a, b)| cycle.contains(a) && cycle.contains(b))
                .map(|(a, b)| format!("{a} -> {b}"))
                .collect();
            found.push(format!("{}: {}", src.display(), edges.join(", ")));
        }
    }
    assert!(
        found.is_empty(),
        "file import cycles:\n{}",
        found.join("\n")
    );
}
