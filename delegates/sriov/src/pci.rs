//! PCI addresses, vendor/device IDs and their names (pure; no I/O).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A PCI function address, `domain:bus:device.function` ("0000:af:06.0").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciAddress {
    pub domain: u32,
    pub bus: u8,
    pub device: u8,
    pub function: u8,
}

impl FromStr for PciAddress {
    type Err = String;

    /// Accepts the full form only (what sysfs and the device plugin use), in either case.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("{s:?} is not a PCI address ({why}; want e.g. 0000:af:06.0)");
        let (domain, rest) = s.split_once(':').ok_or_else(|| bad("no domain"))?;
        let (bus, rest) = rest.split_once(':').ok_or_else(|| bad("no bus"))?;
        let (device, function) = rest.split_once('.').ok_or_else(|| bad("no function"))?;
        let hex = |part: &str, min: usize, max: usize, what: &str| {
            if part.len() < min || part.len() > max || !part.chars().all(|c| c.is_ascii_hexdigit())
            {
                return Err(bad(&format!("bad {what} {part:?}")));
            }
            u32::from_str_radix(part, 16).map_err(|_| bad(&format!("bad {what} {part:?}")))
        };
        let domain = hex(domain, 4, 8, "domain")?;
        let bus = hex(bus, 2, 2, "bus")?;
        let device = hex(device, 2, 2, "device")?;
        let function = hex(function, 1, 1, "function")?;
        if device > 0x1f {
            return Err(bad("device above 1f"));
        }
        if function > 7 {
            return Err(bad("function above 7"));
        }
        // Each value was checked against its field's width above.
        Ok(PciAddress {
            domain,
            bus: bus as u8,
            device: device as u8,
            function: function as u8,
        })
    }
}

impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

impl Serialize for PciAddress {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PciAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Vendor and device IDs of a PCI function, when sysfs tells them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PciIds {
    pub vendor: Option<u16>,
    pub device: Option<u16>,
}

impl PciIds {
    /// Parses the contents of a sysfs `vendor`/`device` file ("0x8086\n").
    pub fn parse_id_file(s: &str) -> Option<u16> {
        let s = s.trim();
        let s = s
            .strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .unwrap_or(s);
        u16::from_str_radix(s, 16).ok()
    }

    /// Parses a `modalias` ("pci:v00008086d0000154Csv...").
    pub fn from_modalias(s: &str) -> PciIds {
        let field = |tag: char, next: &str| -> Option<u16> {
            let s = s.trim().strip_prefix("pci:")?;
            let start = s.find(tag)? + 1;
            let rest = &s[start..];
            let end = rest.find(next).unwrap_or(rest.len());
            u32::from_str_radix(&rest[..end], 16)
                .ok()
                .and_then(|v| u16::try_from(v).ok())
        };
        PciIds {
            vendor: field('v', "d"),
            device: field('d', "sv"),
        }
    }

    /// Vendor ID as the device plugin's selectors write it ("8086").
    pub fn vendor_hex(&self) -> Option<String> {
        self.vendor.map(|v| format!("{v:04x}"))
    }

    /// Device ID as the device plugin's selectors write it ("154c").
    pub fn device_hex(&self) -> Option<String> {
        self.device.map(|d| format!("{d:04x}"))
    }

    /// The vendor's name from the PCI ID database.
    pub fn vendor_name(&self) -> Option<&'static str> {
        let vendor = self.vendor?;
        pci_ids::Vendors::iter()
            .find(|v| v.id() == vendor)
            .map(|v| v.name())
    }

    /// The device's name from the PCI ID database.
    pub fn device_name(&self) -> Option<&'static str> {
        pci_ids::Device::from_vid_pid(self.vendor?, self.device?).map(|d| d.name())
    }

    /// "Intel Corporation Ethernet Virtual Function 700 Series [8086:154c]", or just the IDs.
    pub fn describe(&self) -> String {
        let ids = match (self.vendor, self.device) {
            (Some(v), Some(d)) => format!("[{v:04x}:{d:04x}]"),
            (Some(v), None) => format!("[{v:04x}:????]"),
            _ => return "unknown device".to_owned(),
        };
        match (self.vendor_name(), self.device_name()) {
            (Some(v), Some(d)) => format!("{v} {d} {ids}"),
            (Some(v), None) => format!("{v} {ids}"),
            _ => ids,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_addresses() {
        let a: PciAddress = "0000:AF:06.1".parse().unwrap();
        assert_eq!(a.to_string(), "0000:af:06.1");
        assert_eq!(
            a,
            PciAddress {
                domain: 0,
                bus: 0xaf,
                device: 6,
                function: 1
            }
        );
        let wide: PciAddress = "10000:01:00.0".parse().unwrap();
        assert_eq!(wide.to_string(), "10000:01:00.0");
        for bad in [
            "",
            "af:06.1",
            "0000:af:06",
            "0000:af:20.0",
            "0000:af:06.8",
            "0000:g0:06.0",
            "000:af:06.0",
            "0000:af:06.0 ",
            "0000:af:06.10",
        ] {
            assert!(bad.parse::<PciAddress>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn ids_and_names() {
        assert_eq!(PciIds::parse_id_file("0x8086\n"), Some(0x8086));
        let ids = PciIds::from_modalias("pci:v00008086d0000154Csv00008086sd00000000bc02sc00i00\n");
        assert_eq!(ids.vendor, Some(0x8086));
        assert_eq!(ids.device, Some(0x154c));
        assert_eq!(ids.vendor_hex().as_deref(), Some("8086"));
        assert_eq!(ids.device_hex().as_deref(), Some("154c"));
        assert_eq!(ids.vendor_name(), Some("Intel Corporation"));
        let described = ids.describe();
        assert!(described.contains("Virtual Function"), "{described}");
        assert!(described.ends_with("[8086:154c]"), "{described}");
        assert_eq!(PciIds::default().describe(), "unknown device");
    }
}
