//! Ethernet MAC addresses as typed values (`aa:bb:cc:dd:ee:ff`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A 48-bit Ethernet MAC address. Serialised as its text form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// All zeroes, as a VF's MAC reads when none was set.
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// The address from a hardware address of exactly 6 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 6]>::try_from(bytes).ok().map(MacAddr)
    }

    /// The address from a netlink attribute: 6 bytes, or a longer zero-padded buffer (a VF's
    /// MAC comes in 32 bytes).
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        bytes.get(..6).and_then(Self::from_slice)
    }

    /// The six bytes.
    pub fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// All zeroes, as a VF's MAC reads when none was set.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }

    /// Bit 0 of the first octet: a multicast address cannot be given to an interface.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// Why a text is not a MAC address; the message names the text and the part at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MacParseError(String);

impl FromStr for MacAddr {
    type Err = MacParseError;

    /// Parses `aa:bb:cc:dd:ee:ff` (also with `-` separators, any case).
    fn from_str(s: &str) -> Result<Self, MacParseError> {
        let parts: Vec<&str> = s.split([':', '-']).collect();
        if parts.len() != 6 {
            return Err(MacParseError(format!(
                "{s:?} is not a MAC address (want 6 bytes, e.g. 02:00:00:00:00:01)"
            )));
        }
        let bad_byte =
            |part: &str| MacParseError(format!("{s:?} is not a MAC address (byte {part:?})"));
        let mut out = [0u8; 6];
        for (byte, part) in out.iter_mut().zip(&parts) {
            if part.len() != 2 {
                return Err(bad_byte(part));
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad_byte(part))?;
        }
        Ok(MacAddr(out))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let mac: MacAddr = "0A:1b:2c:3d:4e:5F".parse().unwrap();
        assert_eq!(mac.0, [0x0a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f]);
        assert_eq!(mac.to_string(), "0a:1b:2c:3d:4e:5f");
        assert_eq!("0a-1b-2c-3d-4e-5f".parse::<MacAddr>().unwrap(), mac);
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "0a:1b:2c:3d:4e",
            "0a:1b:2c:3d:4e:5f:00",
            "0a:1b:2c:3d:4e:5g",
            "a:1b:2c:3d:4e:5f",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn classifies() {
        assert!(MacAddr::default().is_zero());
        assert!(
            "01:00:5e:00:00:01"
                .parse::<MacAddr>()
                .unwrap()
                .is_multicast()
        );
        assert!(
            !"02:00:00:00:00:01"
                .parse::<MacAddr>()
                .unwrap()
                .is_multicast()
        );
        assert_eq!(MacAddr::from_slice(&[1, 2, 3]), None);
    }

    #[test]
    fn reads_padded_netlink_bytes_and_round_trips_as_text() {
        let mut padded = [0u8; 32];
        padded[..6].copy_from_slice(&[2, 0, 0, 0, 0, 7]);
        let mac = MacAddr::from_bytes(&padded).unwrap();
        assert_eq!(mac.to_string(), "02:00:00:00:00:07");
        let json = serde_json::to_string(&mac).unwrap();
        assert_eq!(json, "\"02:00:00:00:00:07\"");
        assert_eq!(serde_json::from_str::<MacAddr>(&json).unwrap(), mac);
    }
}
