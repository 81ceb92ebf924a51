//! The tag multinet puts on every link it creates in a container (`IFLA_IFALIAS`), so teardown
//! can tell its own links from links of the same name made by someone else. A MAC cannot do
//! that: a pod may set any MAC it likes.

use std::path::Path;

use crate::error::{Error, Result};
use crate::link::Link;
use crate::netns::Netns;
use crate::socket::{KernelError, Socket};

/// What every tag starts with.
pub const TAG_PREFIX: &str = "multinet:";

/// The kernel's alias buffer (IFALIASZ, 256) less its NUL.
pub const MAX_ALIAS_LEN: usize = 255;

/// Marks a tag whose container ID was hashed; never part of a verbatim ID (see
/// [`is_plain_id`]), so a hashed tag cannot equal another container's verbatim one.
const HASHED_MARK: char = '~';

/// The alias of every link multinet creates for container `container_id`.
///
/// `multinet:<containerID>` when the ID is made of the characters the CNI spec allows
/// (alphanumerics, `_`, `.`, `-`) and fits the kernel's alias buffer; otherwise
/// `multinet:~` and a 128-bit hash of the ID. The same ID always gives the same tag.
pub fn link_tag(container_id: &str) -> String {
    if is_plain_id(container_id) && TAG_PREFIX.len() + container_id.len() <= MAX_ALIAS_LEN {
        return format!("{TAG_PREFIX}{container_id}");
    }
    format!(
        "{TAG_PREFIX}{HASHED_MARK}{:016x}{:016x}",
        fnv1a(container_id, 0),
        fnv1a(container_id, 1)
    )
}

/// What the name of every link multinet is still creating starts with ([`pending_link_name`]).
const PENDING_PREFIX: &str = "mn";

/// The name a link for container `container_id` and interface `ifname` is created under,
/// before one request names it `ifname` and tags it.
///
/// The kernel ignores an alias in the request that creates a link, so the tag needs a request
/// of its own; a call killed between the two would leave a link that nothing marks as
/// multinet's. The name, set in the creating request itself, marks it in the meantime: `mn`,
/// 8 hex digits from the container ID (what [`delete_links_tagged`] knows) and 5 from the
/// interface name (what DEL knows besides), 15 characters, the most a name may have. It never
/// appears in the host, so kernels that check a new link's name against the creating
/// namespace (before Linux 6.13) do not refuse it.
pub fn pending_link_name(container_id: &str, ifname: &str) -> String {
    format!(
        "{PENDING_PREFIX}{:08x}{:05x}",
        fnv1a(container_id, 2) & 0xffff_ffff,
        fnv1a(ifname, 3) & 0xf_ffff
    )
}

/// Whether `name` is a [`pending_link_name`] of container `container_id` (for any interface).
pub fn is_pending_link_of(name: &str, container_id: &str) -> bool {
    let container = format!(
        "{PENDING_PREFIX}{:08x}",
        fnv1a(container_id, 2) & 0xffff_ffff
    );
    name.len() == container.len() + 5
        && name.starts_with(&container)
        && name[container.len()..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit())
}

/// Whether `alias` is a multinet tag (for any container).
pub fn is_multinet_tag(alias: &str) -> bool {
    alias.starts_with(TAG_PREFIX)
}

impl Link {
    /// Whether this link carries multinet's tag for container `container_id`: made by
    /// multinet for that container. For callers that already listed the links.
    pub fn tagged_for(&self, container_id: &str) -> bool {
        self.alias.as_deref() == Some(link_tag(container_id).as_str())
    }

    /// Whether this is a link multinet began to create for container `container_id` and was
    /// stopped before naming and tagging it: a [`pending_link_name`] of that container, no
    /// alias, and a kind (a virtual link, as every link multinet creates is).
    pub fn pending_for(&self, container_id: &str) -> bool {
        self.alias.is_none() && self.kind.is_some() && is_pending_link_of(&self.name, container_id)
    }
}

fn is_plain_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// 64-bit FNV-1a with a seed byte; two seeds give 128 bits. The ID comes from the runtime,
/// not from a pod author, so the hash has to be stable and spread, not resist an attacker.
fn fnv1a(s: &str, seed: u8) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ u64::from(seed);
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Deletes every link in the namespace at `netns` whose alias is exactly
/// [`link_tag`]`(container_id)`, or that is still [`Link::pending_for`] that container, and
/// returns how many it deleted. For teardown without a
/// usable record (only the container ID and the netns path are known): links of the same
/// name that multinet did not create are left alone.
///
/// A namespace that is gone (missing path, unmounted leftover) has nothing to delete: 0. A
/// link that disappears between the listing and its deletion is not counted and no error.
pub fn delete_links_tagged(netns: &Path, container_id: &str) -> Result<usize> {
    let ns = match Netns::open(netns) {
        Ok(ns) => ns,
        Err(e) if e.is_not_found() => return Ok(0),
        Err(e) => return Err(e),
    };
    let failed = |what: String, e: KernelError| match e {
        KernelError::Netns(e) => e,
        other => Error::io(format!("{what} in {}", netns.display()), other.into()),
    };
    let (socket, ()) =
        Socket::inside(&ns, |_| ()).map_err(|e| failed("open netlink socket".into(), e))?;
    let links = socket.links().map_err(|e| failed("list links".into(), e))?;
    let mut deleted = 0;
    for link in links {
        if !link.tagged_for(container_id) && !link.pending_for(container_id) {
            continue;
        }
        match socket.delete_link(link.index) {
            Ok(()) => deleted += 1,
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(failed(format!("delete link {}", link.name), e)),
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_id_is_kept_verbatim() {
        let id = "3f1c0d2e9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d";
        assert_eq!(link_tag(id), format!("multinet:{id}"));
        assert_eq!(link_tag("pod_1.a-b"), "multinet:pod_1.a-b");
        assert!(is_multinet_tag(&link_tag(id)));
        assert!(!is_multinet_tag("net1 of pod a"));
    }

    #[test]
    fn long_or_odd_ids_are_hashed_stably_within_the_alias_buffer() {
        let long = "a".repeat(MAX_ALIAS_LEN);
        let fits = "a".repeat(MAX_ALIAS_LEN - TAG_PREFIX.len());
        for id in [long.as_str(), "with space", "colon:id", "", "é"] {
            let tag = link_tag(id);
            assert!(tag.starts_with("multinet:~"), "{id:?} -> {tag}");
            assert_eq!(tag.len(), TAG_PREFIX.len() + 1 + 32, "{id:?}");
            assert_eq!(tag, link_tag(id), "stable for {id:?}");
        }
        assert_eq!(link_tag(&fits).len(), MAX_ALIAS_LEN);
        assert!(!link_tag(&fits).contains('~'));
        // Known value: the hash must not change between releases, or teardown after an
        // upgrade would no longer recognise the links made before it.
        assert_eq!(link_tag(""), "multinet:~cbf29ce484222325cbf29ce484222324");
    }

    #[test]
    fn a_link_is_tagged_for_exactly_one_container() {
        let mut link = Link::from_message(&netlink_packet_route::link::LinkMessage::default());
        assert!(!link.tagged_for("abc"));
        link.alias = Some(link_tag("abc"));
        assert!(link.tagged_for("abc"));
        assert!(!link.tagged_for("ab"));
        assert!(!link.tagged_for("abcd"));
        let long = "z".repeat(400);
        link.alias = Some(link_tag(&long));
        assert!(link.tagged_for(&long));
        assert!(!link.tagged_for(&long[1..]));
    }

    #[test]
    fn a_pending_name_is_a_kernel_name_of_its_container_only() {
        let name = pending_link_name("ctr-a", "net1");
        assert_eq!(name.len(), 15, "{name}");
        assert!(name.starts_with("mn"));
        assert_eq!(name, pending_link_name("ctr-a", "net1"), "stable");
        assert_ne!(name, pending_link_name("ctr-a", "net2"));
        assert_ne!(name, pending_link_name("ctr-b", "net1"));
        assert!(is_pending_link_of(&name, "ctr-a"));
        assert!(is_pending_link_of(
            &pending_link_name("ctr-a", "eth9"),
            "ctr-a"
        ));
        assert!(!is_pending_link_of(&name, "ctr-b"));
        assert!(!is_pending_link_of(&name[..14], "ctr-a"));
        assert!(!is_pending_link_of(&format!("{}z", &name[..14]), "ctr-a"));
        assert!(!is_pending_link_of("net1", "ctr-a"));
        // Known value: a multinet upgraded while a call was stopped must still know the name.
        assert_eq!(pending_link_name("", ""), "mn8422232722326");

        let mut link = Link::from_message(&netlink_packet_route::link::LinkMessage::default());
        link.name = name.clone();
        link.kind = Some("macvlan".into());
        assert!(link.pending_for("ctr-a"));
        assert!(!link.pending_for("ctr-b"));
        // Tagged, or set by the pod: not pending. A device without a kind: never ours.
        link.alias = Some(link_tag("ctr-a"));
        assert!(!link.pending_for("ctr-a"));
        link.alias = None;
        link.kind = None;
        assert!(!link.pending_for("ctr-a"));
    }

    #[test]
    fn different_ids_give_different_tags() {
        let long_a = format!("{}a", "x".repeat(300));
        let long_b = format!("{}b", "x".repeat(300));
        assert_ne!(link_tag(&long_a), link_tag(&long_b));
        assert_ne!(link_tag("a b"), link_tag("a  b"));
        assert_ne!(link_tag("abc"), link_tag("abd"));
    }
}
