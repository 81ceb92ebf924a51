//! Deciding whether a privileged test, or one needing the reference plugins, can run.

use std::path::{Path, PathBuf};

/// True when the effective user is root.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Where the package containernetworking-plugins installs the reference plugins.
const REFERENCE_PLUGINS: &str = "/usr/lib/cni";

/// The reference plugin `name` (package containernetworking-plugins), or None when it is not
/// installed: then in CI (`CI=true`) it panics, elsewhere it prints a visible skip line.
pub fn reference_plugin(name: &str) -> Option<PathBuf> {
    let path = Path::new(REFERENCE_PLUGINS).join(name);
    if path.exists() {
        return Some(path);
    }
    assert!(
        !in_ci(),
        "{} missing: install containernetworking-plugins",
        path.display()
    );
    skip_line(&format!(
        "SKIPPED: reference {} not installed",
        path.display()
    ));
    None
}

/// Writes `line` straight to the stderr stream: the test harness captures eprintln! of
/// passing tests, and a skip must be seen.
fn skip_line(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// True when running in CI, where a privileged test that cannot run must fail.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// Returns true when the privileged test `test` can run (euid 0).
///
/// Otherwise: in CI (`CI=true`) it panics, so the test fails rather than passing silently;
/// outside CI it prints a visible `SKIPPED (needs root): <test>` line to stderr and returns false.
pub fn require_root(test: &str) -> bool {
    match decide(is_root(), in_ci()) {
        Decision::Run => true,
        Decision::Fail => panic!(
            "privileged test {test} cannot run: it needs root (euid 0) and CI=true forbids skipping"
        ),
        Decision::Skip => {
            skip_line(&format!("SKIPPED (needs root): {test}"));
            false
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Decision {
    Run,
    Skip,
    Fail,
}

fn decide(root: bool, ci: bool) -> Decision {
    match (root, ci) {
        (true, _) => Decision::Run,
        (false, true) => Decision::Fail,
        (false, false) => Decision::Skip,
    }
}

/// The path of the function this macro is expanded in, e.g. `my_tests::adds_a_link`.
#[macro_export]
macro_rules! enclosing_fn_name {
    () => {{
        fn __here() {}
        let mut name = ::std::any::type_name_of_val(&__here);
        name = name.strip_suffix("::__here").unwrap_or(name);
        // Async tests expand to closures and async blocks.
        while let Some(outer) = name.strip_suffix("::{{closure}}") {
            name = outer;
        }
        name
    }};
}

/// Returns early from the calling test unless it can run as root (see [`require_root()`]).
///
/// - `require_root!()` names the enclosing function in the skip message.
/// - `require_root!("name")` uses the given name.
/// - `require_root!("name", value)` returns `value` (for tests returning `Result`).
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::require_root($crate::enclosing_fn_name!()) {
            return;
        }
    };
    ($name:expr) => {
        if !$crate::require_root($name) {
            return;
        }
    };
    ($name:expr, $ret:expr) => {
        if !$crate::require_root($name) {
            return $ret;
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_plugins_are_found_or_skipped() {
        // The test machines have containernetworking-plugins (the rules require it).
        assert_eq!(
            reference_plugin("host-local").as_deref(),
            Some(Path::new("/usr/lib/cni/host-local"))
        );
        let missing = std::panic::catch_unwind(|| reference_plugin("no-such-plugin"));
        if in_ci() {
            assert!(missing.is_err(), "a missing plugin fails in CI");
        } else {
            assert_eq!(missing.ok(), Some(None));
        }
    }

    #[test]
    fn non_root_fails_in_ci_and_skips_elsewhere() {
        assert_eq!(decide(true, true), Decision::Run);
        assert_eq!(decide(true, false), Decision::Run);
        assert_eq!(decide(false, true), Decision::Fail);
        assert_eq!(decide(false, false), Decision::Skip);
    }
}
