//! Running `ip` and other commands, failing loudly.

use std::process::{Command, Output};

/// Runs `program args`, panicking with its stderr when it cannot start or exits non-zero;
/// returns stdout.
pub fn run_checked(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    if !out.status.success() {
        panic!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `program args` and returns its output; panics only when it cannot start.
pub(crate) fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{program}`: {e} (is iproute2 installed?)"))
}

/// `ip args` in the host namespace; panics on failure; returns stdout.
pub fn host_ip(args: &[&str]) -> String {
    run_checked("ip", args)
}

/// `ip -j args` in the host namespace, parsed. Empty output parses as an empty array.
pub fn host_ip_json(args: &[&str]) -> serde_json::Value {
    let mut full = vec!["-j"];
    full.extend_from_slice(args);
    parse_ip_json(&run_checked("ip", &full))
}

pub(crate) fn parse_ip_json(stdout: &str) -> serde_json::Value {
    if stdout.trim().is_empty() {
        return serde_json::Value::Array(Vec::new());
    }
    serde_json::from_str(stdout)
        .unwrap_or_else(|e| panic!("`ip -j` printed invalid JSON ({e}): {stdout}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_ip_output_is_an_empty_array() {
        assert_eq!(parse_ip_json(" \n"), serde_json::json!([]));
        assert_eq!(parse_ip_json("[{\"a\":1}]")[0]["a"], 1);
    }
}
