//! Unique, parallel-safe names for namespaces and links.

use std::sync::atomic::{AtomicU32, Ordering};

/// Linux limits interface names to IFNAMSIZ - 1 bytes.
const MAX_LINK_NAME: usize = 15;

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn next_suffix() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}x{}", base36(std::process::id()), base36(n))
}

fn base36(mut n: u32) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8_lossy(&out).into_owned()
}

/// A name unique in this process and across processes: `prefix` + pid + counter.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}{}", next_suffix())
}

/// A unique interface name of at most 15 bytes; `prefix` is shortened if needed so the unique
/// part (pid + counter) is always kept whole.
pub fn unique_link_name(prefix: &str) -> String {
    let suffix = next_suffix();
    let room = MAX_LINK_NAME.saturating_sub(suffix.len());
    let prefix: String = prefix
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(room)
        .collect();
    format!("{prefix}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn link_names_fit_ifnamsiz_and_are_unique() {
        let names: Vec<String> = (0..1000)
            .map(|_| unique_link_name("averylongprefix"))
            .collect();
        assert!(names.iter().all(|n| n.len() <= MAX_LINK_NAME), "{names:?}");
        let set: HashSet<_> = names.iter().collect();
        assert_eq!(set.len(), names.len());
    }

    #[test]
    fn short_prefix_is_kept() {
        assert!(unique_link_name("mv").starts_with("mv"));
        assert!(unique_name("mntb-").starts_with("mntb-"));
    }

    #[test]
    fn base36_encodes() {
        assert_eq!(base36(0), "0");
        assert_eq!(base36(35), "z");
        assert_eq!(base36(36), "10");
        assert_eq!(base36(u32::MAX), "1z141z3");
    }
}
