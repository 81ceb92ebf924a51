//! Address arithmetic on plain integers, so ranges of both families share one code path.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address as (is_v4, value).
pub fn to_u128(ip: IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(a) => (true, u128::from(u32::from(a))),
        IpAddr::V6(a) => (false, u128::from(a)),
    }
}

pub fn from_u128(v4: bool, n: u128) -> IpAddr {
    if v4 {
        // Values for v4 always come from u32 arithmetic kept in range by the callers.
        IpAddr::V4(Ipv4Addr::from(u32::try_from(n & 0xffff_ffff).unwrap_or(0)))
    } else {
        IpAddr::V6(Ipv6Addr::from(n))
    }
}

/// The next address, wrapping at the end of the family's space.
pub fn next_ip(ip: IpAddr) -> IpAddr {
    let (v4, n) = to_u128(ip);
    let max = if v4 { u128::from(u32::MAX) } else { u128::MAX };
    from_u128(v4, if n == max { 0 } else { n + 1 })
}

/// IPv4-mapped IPv6 addresses become IPv4, as the reference canonicalizes them.
pub fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// Parses "10.0.0.5" or "10.0.0.5/24" (the address part is used).
pub fn parse_ip_or_cidr(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    let ip = match s.split_once('/') {
        Some((ip, prefix)) => {
            let ip: IpAddr = ip.parse().ok()?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            if prefix.parse::<u8>().ok()? > max {
                return None;
            }
            ip
        }
        None => s.parse().ok()?,
    };
    Some(canonical(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic() {
        let ip: IpAddr = "10.0.0.255".parse().unwrap();
        assert_eq!(next_ip(ip).to_string(), "10.0.1.0");
        assert_eq!(
            next_ip("255.255.255.255".parse().unwrap()).to_string(),
            "0.0.0.0"
        );
        assert_eq!(
            next_ip("2001:db8::ffff".parse().unwrap()).to_string(),
            "2001:db8::1:0"
        );
        assert_eq!(
            parse_ip_or_cidr("10.0.0.5/24").unwrap().to_string(),
            "10.0.0.5"
        );
        assert_eq!(
            parse_ip_or_cidr("::ffff:10.0.0.5").unwrap().to_string(),
            "10.0.0.5"
        );
        assert!(parse_ip_or_cidr("10.0.0.5/33").is_none());
        assert!(parse_ip_or_cidr("nope").is_none());
    }
}
