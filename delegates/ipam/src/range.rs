//! Address ranges and range sets, validated with the reference host-local's defaults and
//! refusals: gateway defaults to subnet+1 and is never handed out, rangeStart defaults to
//! subnet+1, rangeEnd to the last usable address (broadcast-1 for IPv4), /31 and /32 (/127,
//! /128) are refused, rangeStart/rangeEnd must lie inside the subnet, and ranges must not overlap.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::addr::{canonical, from_u128, next_ip, to_u128};
use crate::error::{IpamError, IpamResult};

/// One validated range; `subnet` is a network address (host bits set are refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub subnet: IpNet,
    pub range_start: IpAddr,
    pub range_end: IpAddr,
    pub gateway: IpAddr,
}

/// A range before validation, as read from the config, with the key path for messages.
#[derive(Debug, Clone, Default)]
pub struct RawRange {
    pub key: String,
    pub subnet: Option<IpNet>,
    pub range_start: Option<IpAddr>,
    pub range_end: Option<IpAddr>,
    pub gateway: Option<IpAddr>,
}

fn last_ip(subnet: &IpNet) -> IpAddr {
    let b = subnet.broadcast();
    match b {
        IpAddr::V4(_) => {
            let (_, n) = to_u128(b);
            from_u128(true, n.saturating_sub(1))
        }
        IpAddr::V6(_) => b,
    }
}

impl Range {
    /// Validates a raw range and fills in the defaults.
    pub fn canonicalize(raw: &RawRange) -> IpamResult<Range> {
        let key = &raw.key;
        let subnet = raw
            .subnet
            .ok_or_else(|| IpamError::config(format!("{key}.subnet"), "is missing"))?;
        let subnet = IpNet::new(canonical(subnet.addr()), subnet.prefix_len())
            .map_err(|e| IpamError::config(format!("{key}.subnet"), e.to_string()))?;
        if subnet.prefix_len() > subnet.max_prefix_len() - 2 {
            return Err(IpamError::config(
                format!("{key}.subnet"),
                format!("network {} too small to allocate from", subnet.trunc()),
            ));
        }
        let in_subnet = |ip: IpAddr, what: &str| -> IpamResult<IpAddr> {
            let ip = canonical(ip);
            if subnet.contains(&ip) {
                Ok(ip)
            } else {
                Err(IpamError::config(
                    format!("{key}.{what}"),
                    format!("{ip} not in network {}", subnet.trunc()),
                ))
            }
        };
        if subnet.addr() != subnet.network() {
            return Err(IpamError::config(
                format!("{key}.subnet"),
                format!(
                    "network {subnet} has host bits set; for a /{} the network address is {}",
                    subnet.prefix_len(),
                    subnet.network()
                ),
            ));
        }
        // The reference accepts a gateway outside the subnet (a routed gateway); one of the
        // other family can only be a mistake.
        let gateway = match raw.gateway {
            Some(gw) => {
                let gw = canonical(gw);
                if gw.is_ipv4() != subnet.addr().is_ipv4() {
                    return Err(IpamError::config(
                        format!("{key}.gateway"),
                        format!("{gw} is not of the same family as subnet {subnet}"),
                    ));
                }
                gw
            }
            None => next_ip(subnet.addr()),
        };
        let range_start = match raw.range_start {
            Some(ip) => in_subnet(ip, "rangeStart")?,
            None => next_ip(subnet.addr()),
        };
        let range_end = match raw.range_end {
            Some(ip) => {
                let ip = in_subnet(ip, "rangeEnd")?;
                if to_u128(ip).1 < to_u128(range_start).1 {
                    return Err(IpamError::config(
                        format!("{key}.rangeEnd"),
                        format!(
                            "{ip} is in network {} but before start {range_start}",
                            subnet.trunc()
                        ),
                    ));
                }
                ip
            }
            None => last_ip(&subnet),
        };
        Ok(Range {
            subnet,
            range_start,
            range_end,
            gateway,
        })
    }

    /// True when `ip` is an allocatable address of this range (gateway included).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        if ip.is_ipv4() != self.subnet.addr().is_ipv4() || !self.subnet.contains(&ip) {
            return false;
        }
        let n = to_u128(ip).1;
        to_u128(self.range_start).1 <= n && n <= to_u128(self.range_end).1
    }

    pub fn overlaps(&self, other: &Range) -> bool {
        self.is_v4() == other.is_v4()
            && (self.contains(other.range_start)
                || self.contains(other.range_end)
                || other.contains(self.range_start)
                || other.contains(self.range_end))
    }

    pub fn is_v4(&self) -> bool {
        self.subnet.addr().is_ipv4()
    }

    /// The address with this range's prefix length, as a result carries it.
    pub fn with_prefix(&self, ip: IpAddr) -> IpNet {
        // The prefix comes from a valid IpNet of the same family as `ip`.
        IpNet::new(ip, self.subnet.prefix_len()).unwrap_or_else(|_| IpNet::from(ip))
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.range_start, self.range_end)
    }
}

/// Pools that together yield one address (one entry of `ranges`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeSet {
    /// Key path for messages, e.g. `ipam.ranges[1]`.
    pub key: String,
    pub ranges: Vec<Range>,
}

impl RangeSet {
    pub fn canonicalize(key: &str, raws: &[RawRange]) -> IpamResult<RangeSet> {
        if raws.is_empty() {
            return Err(IpamError::config(key, "empty range set"));
        }
        let mut ranges = Vec::with_capacity(raws.len());
        for raw in raws {
            let r = Range::canonicalize(raw)?;
            if let Some(first) = ranges.first().map(Range::is_v4)
                && first != r.is_v4()
            {
                return Err(IpamError::config(
                    raw.key.clone(),
                    "mixed address families in one range set",
                ));
            }
            ranges.push(r);
        }
        for (i, a) in ranges.iter().enumerate() {
            for (j, b) in ranges.iter().enumerate().skip(i + 1) {
                if a.overlaps(b) {
                    return Err(IpamError::config(
                        raws[j].key.clone(),
                        format!("subnets {a} and {b} overlap (with {})", raws[i].key),
                    ));
                }
            }
        }
        Ok(RangeSet {
            key: key.to_string(),
            ranges,
        })
    }

    pub fn range_for(&self, ip: IpAddr) -> Option<&Range> {
        self.ranges.iter().find(|r| r.contains(ip))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.range_for(ip).is_some()
    }

    pub fn overlaps(&self, other: &RangeSet) -> bool {
        self.ranges
            .iter()
            .any(|a| other.ranges.iter().any(|b| a.overlaps(b)))
    }

    pub fn is_v4(&self) -> bool {
        self.ranges.first().is_some_and(Range::is_v4)
    }
}

impl fmt::Display for RangeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.ranges.iter().map(Range::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

/// Round-robin iteration over a range set, as the reference does it: start after the last
/// reserved address when it lies in the set, else at the first range's start; skip gateways;
/// stop after one full turn.
#[derive(Debug)]
pub struct RangeIter<'a> {
    set: &'a RangeSet,
    idx: usize,
    cur: Option<IpAddr>,
    start: Option<IpAddr>,
}

impl<'a> RangeIter<'a> {
    pub fn new(set: &'a RangeSet, last_reserved: Option<IpAddr>) -> RangeIter<'a> {
        if let Some(last) = last_reserved
            && let Some(idx) = set.ranges.iter().position(|r| r.contains(last))
        {
            return RangeIter {
                set,
                idx,
                cur: Some(last),
                start: None,
            };
        }
        RangeIter {
            set,
            idx: 0,
            cur: None,
            start: set.ranges.first().map(|r| r.range_start),
        }
    }
}

impl Iterator for RangeIter<'_> {
    /// The address and the range it belongs to.
    type Item = (IpAddr, usize);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let r = self.set.ranges.get(self.idx)?;
            let Some(cur) = self.cur else {
                self.cur = Some(r.range_start);
                self.start = Some(r.range_start);
                if r.range_start == r.gateway {
                    continue;
                }
                return Some((r.range_start, self.idx));
            };
            let next = if cur == r.range_end {
                self.idx = (self.idx + 1) % self.set.ranges.len();
                self.set.ranges[self.idx].range_start
            } else {
                next_ip(cur)
            };
            self.cur = Some(next);
            match self.start {
                None => self.start = Some(next),
                Some(s) if s == next => return None,
                Some(_) => {}
            }
            if next == self.set.ranges[self.idx].gateway {
                continue;
            }
            return Some((next, self.idx));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(subnet: &str) -> RawRange {
        RawRange {
            key: "r".into(),
            subnet: Some(subnet.parse().unwrap()),
            ..RawRange::default()
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn defaults() {
        let r = Range::canonicalize(&raw("10.0.0.0/24")).unwrap();
        assert_eq!(r.gateway, ip("10.0.0.1"));
        assert_eq!(r.range_start, ip("10.0.0.1"));
        assert_eq!(r.range_end, ip("10.0.0.254"));
        let r6 = Range::canonicalize(&raw("2001:db8::/120")).unwrap();
        assert_eq!(r6.range_end, ip("2001:db8::ff"));
        // Host bits are refused, as the reference does.
        assert!(
            matches!(Range::canonicalize(&raw("10.0.0.5/24")), Err(IpamError::Config { key, .. }) if key == "r.subnet")
        );
    }

    #[test]
    fn refusals() {
        for (s, key) in [
            ("10.0.0.0/31", "r.subnet"),
            ("10.0.0.0/32", "r.subnet"),
            ("2001:db8::/127", "r.subnet"),
        ] {
            match Range::canonicalize(&raw(s)) {
                Err(IpamError::Config { key: k, .. }) => assert_eq!(k, key),
                other => panic!("{s}: {other:?}"),
            }
        }
        let mut r = raw("10.0.0.0/24");
        r.gateway = Some(ip("2001:db8::1"));
        assert!(
            matches!(Range::canonicalize(&r), Err(IpamError::Config { key, .. }) if key == "r.gateway")
        );
        // A gateway outside the subnet is accepted, as the reference does.
        r.gateway = Some(ip("10.0.1.1"));
        assert_eq!(Range::canonicalize(&r).unwrap().gateway, ip("10.0.1.1"));
        let mut r = raw("10.0.0.0/24");
        r.range_start = Some(ip("10.0.1.1"));
        assert!(
            matches!(Range::canonicalize(&r), Err(IpamError::Config { key, .. }) if key == "r.rangeStart")
        );
        let mut r = raw("10.0.0.0/24");
        r.range_end = Some(ip("2001:db8::1"));
        assert!(
            matches!(Range::canonicalize(&r), Err(IpamError::Config { key, .. }) if key == "r.rangeEnd")
        );
        let mut r = raw("10.0.0.0/24");
        r.range_start = Some(ip("10.0.0.50"));
        r.range_end = Some(ip("10.0.0.40"));
        assert!(
            matches!(Range::canonicalize(&r), Err(IpamError::Config { key, .. }) if key == "r.rangeEnd")
        );
        assert!(
            matches!(Range::canonicalize(&RawRange { key: "r".into(), ..RawRange::default() }),
            Err(IpamError::Config { key, .. }) if key == "r.subnet")
        );
    }

    #[test]
    fn sets() {
        let a = raw("10.0.0.0/24");
        let mut b = raw("10.0.0.0/25");
        b.key = "b".into();
        assert!(
            matches!(RangeSet::canonicalize("s", &[a.clone(), b]), Err(IpamError::Config { key, .. }) if key == "b")
        );
        let c = raw("2001:db8::/64");
        assert!(RangeSet::canonicalize("s", &[a.clone(), c]).is_err());
        assert!(RangeSet::canonicalize("s", &[]).is_err());
        let s = RangeSet::canonicalize("s", &[a, raw("10.0.1.0/24")]).unwrap();
        assert_eq!(s.to_string(), "10.0.0.1-10.0.0.254,10.0.1.1-10.0.1.254");
        assert!(s.contains(ip("10.0.1.7")));
        assert!(!s.contains(ip("10.0.2.7")));
        assert!(!s.contains(ip("10.0.0.255")));
    }

    #[test]
    fn iteration_skips_gateway_and_wraps() {
        let mut r = raw("10.0.0.0/29");
        r.range_end = Some(ip("10.0.0.4"));
        let s = RangeSet::canonicalize("s", &[r, raw("10.0.1.0/30")]).unwrap();
        let all: Vec<String> = RangeIter::new(&s, None)
            .map(|(i, _)| i.to_string())
            .collect();
        assert_eq!(all, ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.1.2"]);
        let from_last: Vec<String> = RangeIter::new(&s, Some(ip("10.0.0.3")))
            .map(|(i, _)| i.to_string())
            .collect();
        assert_eq!(from_last, ["10.0.0.4", "10.0.1.2", "10.0.0.2", "10.0.0.3"]);
        // A last address outside the set is ignored.
        let outside: Vec<String> = RangeIter::new(&s, Some(ip("192.168.0.1")))
            .map(|(i, _)| i.to_string())
            .collect();
        assert_eq!(outside, all);
        // A range holding only its gateway yields nothing.
        let mut g = raw("10.0.0.0/24");
        g.range_start = Some(ip("10.0.0.1"));
        g.range_end = Some(ip("10.0.0.1"));
        let only_gw = RangeSet::canonicalize("s", &[g]).unwrap();
        assert_eq!(RangeIter::new(&only_gw, None).count(), 0);
    }
}
