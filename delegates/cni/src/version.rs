//! CNI specification versions.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{CniError, ErrorCode};

/// A CNI specification version this crate can read and write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CniVersion {
    V0_1_0,
    V0_2_0,
    V0_3_0,
    V0_3_1,
    V0_4_0,
    V1_0_0,
    V1_1_0,
}

/// What VERSION advertises: every version whose results this crate converts to and from.
pub const SUPPORTED_VERSIONS: &[CniVersion] = &CniVersion::ALL;

impl CniVersion {
    /// The newest version this crate speaks.
    pub const LATEST: CniVersion = CniVersion::V1_1_0;

    /// Every known version, oldest first.
    pub const ALL: [CniVersion; 7] = [
        CniVersion::V0_1_0,
        CniVersion::V0_2_0,
        CniVersion::V0_3_0,
        CniVersion::V0_3_1,
        CniVersion::V0_4_0,
        CniVersion::V1_0_0,
        CniVersion::V1_1_0,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            CniVersion::V0_1_0 => "0.1.0",
            CniVersion::V0_2_0 => "0.2.0",
            CniVersion::V0_3_0 => "0.3.0",
            CniVersion::V0_3_1 => "0.3.1",
            CniVersion::V0_4_0 => "0.4.0",
            CniVersion::V1_0_0 => "1.0.0",
            CniVersion::V1_1_0 => "1.1.0",
        }
    }

    /// CHECK exists from 0.4.0 on.
    pub fn has_check(&self) -> bool {
        *self >= CniVersion::V0_4_0
    }

    /// STATUS and GC exist from 1.1.0 on.
    pub fn has_status_and_gc(&self) -> bool {
        *self >= CniVersion::V1_1_0
    }

    /// Results carry `ips[].version` in 0.3.0-0.4.0.
    pub fn has_ip_version_field(&self) -> bool {
        (CniVersion::V0_3_0..=CniVersion::V0_4_0).contains(self)
    }

    /// The `{ip4, ip6}` result shape of 0.1.0 and 0.2.0.
    pub fn is_legacy_result(&self) -> bool {
        *self <= CniVersion::V0_2_0
    }

    /// Parses a version as written in a config, where an absent version means 0.1.0 (as libcni reads it).
    pub fn from_config_str(s: &str) -> Result<CniVersion, CniError> {
        if s.is_empty() {
            Ok(CniVersion::V0_1_0)
        } else {
            s.parse()
        }
    }
}

impl FromStr for CniVersion {
    type Err = CniError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CniVersion::ALL
            .iter()
            .copied()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| {
                CniError::new(
                    ErrorCode::IncompatibleVersion,
                    format!("unsupported CNI version {s:?}"),
                )
                .with_details(format!(
                    "supported versions: {}",
                    SUPPORTED_VERSIONS
                        .iter()
                        .map(|v| v.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
    }
}

impl fmt::Display for CniVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for CniVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CniVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_version_and_orders_them() {
        for w in CniVersion::ALL.windows(2) {
            assert!(w[0] < w[1]);
        }
        for v in CniVersion::ALL {
            assert_eq!(v.as_str().parse::<CniVersion>().ok(), Some(v));
            assert_eq!(v.to_string(), v.as_str());
        }
    }

    #[test]
    fn unknown_version_is_code_1() {
        let err = "0.5.0".parse::<CniVersion>().err();
        assert_eq!(err.map(|e| e.code.code()), Some(1));
        assert_eq!(
            CniVersion::from_config_str("").ok(),
            Some(CniVersion::V0_1_0)
        );
    }

    #[test]
    fn gates() {
        assert!(!CniVersion::V0_3_1.has_check());
        assert!(CniVersion::V0_4_0.has_check());
        assert!(!CniVersion::V1_0_0.has_status_and_gc());
        assert!(CniVersion::V1_1_0.has_status_and_gc());
        assert!(CniVersion::V0_4_0.has_ip_version_field());
        assert!(!CniVersion::V1_0_0.has_ip_version_field());
        assert!(!CniVersion::V0_2_0.has_ip_version_field());
    }

    #[test]
    fn serde_as_string() {
        let v: CniVersion = serde_json::from_str("\"0.3.1\"").unwrap();
        assert_eq!(v, CniVersion::V0_3_1);
        assert_eq!(serde_json::to_string(&v).unwrap(), "\"0.3.1\"");
        assert!(serde_json::from_str::<CniVersion>("\"9.9.9\"").is_err());
    }
}
