//! Deciding whether a privileged test can run.

/// True when the effective user is root.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
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
            // Straight to the stderr stream: the test harness captures eprintln! of passing
            // tests, and a skip must be seen.
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "SKIPPED (needs root): {test}");
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
    fn non_root_fails_in_ci_and_skips_elsewhere() {
        assert_eq!(decide(true, true), Decision::Run);
        assert_eq!(decide(true, false), Decision::Run);
        assert_eq!(decide(false, true), Decision::Fail);
        assert_eq!(decide(false, false), Decision::Skip);
    }
}
