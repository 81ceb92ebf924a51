//! resolv.conf into a result's `dns`, as the reference reads it.

use multinet_cni::Dns;

pub fn parse_resolv_conf(text: &str) -> Dns {
    let mut dns = Dns::default();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 2 {
            continue;
        }
        let rest = fields[1..].iter().map(|s| s.to_string());
        match fields[0] {
            "nameserver" => dns.nameservers.push(fields[1].to_string()),
            "domain" => dns.domain = Some(fields[1].to_string()),
            "search" => dns.search.extend(rest),
            "options" => dns.options.extend(rest),
            _ => {}
        }
    }
    dns
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        let d = parse_resolv_conf(
            "# c\n; c\nnameserver 10.0.0.1\nnameserver 2001:db8::1\ndomain example.com\nsearch a.com b.com\noptions ndots:5 rotate\nbogus x\nnameserver\n",
        );
        assert_eq!(d.nameservers, ["10.0.0.1", "2001:db8::1"]);
        assert_eq!(d.domain.as_deref(), Some("example.com"));
        assert_eq!(d.search, ["a.com", "b.com"]);
        assert_eq!(d.options, ["ndots:5", "rotate"]);
    }
}
