//! `lab-probe`: what a test binary sees of its network namespace.
//!
//! `lab-probe links` prints the links of the calling process's namespace, one a line.
//! `lab-probe expect-links NAME...` exits 1 unless every NAME is there and nothing else but `lo`.
//! `lab-probe netns` prints the namespace's identity (`net:[inode]`).
//!
//! It reads `/proc/self/net/dev`, which follows the namespace of the calling thread, so the answer
//! is right whichever way the binary entered it (`ip netns exec`, `nsenter`, setns).

use std::process::ExitCode;

const NET_DEV: &str = "/proc/self/net/dev";

/// Link names from the text of `/proc/net/dev`: two header lines, then `name: counters...`.
fn parse_net_dev(text: &str) -> Vec<String> {
    text.lines()
        .skip(2)
        .filter_map(|line| line.split_once(':'))
        .map(|(name, _)| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .collect()
}

/// What is wrong with `seen` given that exactly `expected` (plus `lo`) should be there.
fn compare_links(seen: &[String], expected: &[String]) -> Vec<String> {
    let missing = expected
        .iter()
        .filter(|e| !seen.contains(e))
        .map(|e| format!("missing {e}"));
    let extra = seen
        .iter()
        .filter(|s| s.as_str() != "lo" && !expected.contains(s))
        .map(|s| format!("unexpected {s}"));
    missing.chain(extra).collect()
}

fn links() -> Result<Vec<String>, String> {
    std::fs::read_to_string(NET_DEV)
        .map(|text| parse_net_dev(&text))
        .map_err(|e| format!("cannot read {NET_DEV}: {e}"))
}

fn run(args: &[String]) -> Result<(), String> {
    match args.first().map(String::as_str) {
        Some("links") => {
            for link in links()? {
                println!("{link}");
            }
            Ok(())
        }
        Some("expect-links") => {
            let seen = links()?;
            let problems = compare_links(&seen, &args[1..]);
            if problems.is_empty() {
                println!("links as expected: {}", seen.join(" "));
                Ok(())
            } else {
                Err(format!(
                    "{} (seen: {})",
                    problems.join(", "),
                    seen.join(" ")
                ))
            }
        }
        Some("netns") => {
            let ns = std::fs::read_link("/proc/self/ns/net")
                .map_err(|e| format!("cannot read /proc/self/ns/net: {e}"))?;
            println!("{}", ns.display());
            Ok(())
        }
        _ => Err("usage: lab-probe links | expect-links NAME... | netns".to_string()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("lab-probe: {message}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
Inter-|   Receive                            |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets
    lo:       0       0    0    0    0     0          0         0        0       0
  net1:    1234      10    0    0    0     0          0         0      567       5
";

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_link_names_after_the_headers() {
        assert_eq!(parse_net_dev(SAMPLE), names(&["lo", "net1"]));
    }

    #[test]
    fn empty_table_has_no_links() {
        assert!(parse_net_dev("h1\nh2\n").is_empty());
    }

    #[test]
    fn expected_links_present_is_clean() {
        assert!(compare_links(&names(&["lo", "net1"]), &names(&["net1"])).is_empty());
    }

    #[test]
    fn reports_missing_and_unexpected_links() {
        let problems = compare_links(&names(&["lo", "eth0"]), &names(&["net1"]));
        assert_eq!(problems, vec!["missing net1", "unexpected eth0"]);
    }
}
