//! The one place where CNI error codes are defined and documented.
//!
//! A plugin reports an error by printing `{"cniVersion", "code", "msg", "details"}` on stdout and
//! exiting non-zero; nothing else may be on stdout. [`CniError`] is that object.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Value, json};

/// A CNI error code. Every code a multinet component emits is one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 1: the config's cniVersion is not supported, or the verb does not exist in that version
    /// (CHECK below 0.4.0, STATUS and GC below 1.1.0).
    IncompatibleVersion,
    /// 2: a config field is not supported by the plugin; the message names the key and value.
    UnsupportedField,
    /// 3: the container is unknown or does not exist; the runtime need not clean up.
    UnknownContainer,
    /// 4: a CNI_* environment variable is missing or invalid; the message names the variable.
    InvalidEnvironment,
    /// 5: an I/O failure (file, socket, netlink) that is not the caller's fault.
    Io,
    /// 6: stdin, a prevResult or a delegate's output is not valid JSON of the expected shape.
    Decode,
    /// 7: the network config is invalid (bad key value, missing required key, unknown plugin
    /// type); the message names the key.
    InvalidConfig,
    /// 8: CNI_NETNS does not name a usable network namespace.
    InvalidNetns,
    /// 11: transient; the runtime should retry later. multinet uses it for an IP range with no
    /// free address and for a delegate that was killed after its timeout.
    TryAgainLater,
    /// 50: STATUS: the plugin cannot serve ADD now.
    NotAvailable,
    /// 51: STATUS: not available, and existing containers may have limited connectivity.
    LimitedConnectivity,
    /// 999: an internal error, or a delegate that failed without a parsable error.
    Internal,
    /// 100 and above: plugin-specific codes. multinet's own are
    /// [`ErrorCode::ADDRESS_IN_USE`] (100) and [`ErrorCode::CHECK_FAILED`] (101). Any other code
    /// reported by a delegate (0, 9, 10, 12-49, 52-99, 102-998, 1000+) is also carried here so
    /// it is passed on unchanged.
    Plugin(u32),
}

impl ErrorCode {
    /// 100: the address asked for is held by another attachment, or this attachment already
    /// holds one in the range (a second ADD without a DEL).
    pub const ADDRESS_IN_USE: ErrorCode = ErrorCode::Plugin(100);
    /// 101: CHECK found the container's state differs from what ADD recorded: an IP
    /// allocation or a link is missing, or a link, address or route is not as ADD left it.
    pub const CHECK_FAILED: ErrorCode = ErrorCode::Plugin(101);
}

impl ErrorCode {
    /// The numeric code printed in the error JSON.
    pub fn code(&self) -> u32 {
        match self {
            ErrorCode::IncompatibleVersion => 1,
            ErrorCode::UnsupportedField => 2,
            ErrorCode::UnknownContainer => 3,
            ErrorCode::InvalidEnvironment => 4,
            ErrorCode::Io => 5,
            ErrorCode::Decode => 6,
            ErrorCode::InvalidConfig => 7,
            ErrorCode::InvalidNetns => 8,
            ErrorCode::TryAgainLater => 11,
            ErrorCode::NotAvailable => 50,
            ErrorCode::LimitedConnectivity => 51,
            ErrorCode::Internal => 999,
            ErrorCode::Plugin(n) => *n,
        }
    }

    /// The code for a number read from a delegate's error JSON.
    pub fn from_code(code: u32) -> ErrorCode {
        match code {
            1 => ErrorCode::IncompatibleVersion,
            2 => ErrorCode::UnsupportedField,
            3 => ErrorCode::UnknownContainer,
            4 => ErrorCode::InvalidEnvironment,
            5 => ErrorCode::Io,
            6 => ErrorCode::Decode,
            7 => ErrorCode::InvalidConfig,
            8 => ErrorCode::InvalidNetns,
            11 => ErrorCode::TryAgainLater,
            50 => ErrorCode::NotAvailable,
            51 => ErrorCode::LimitedConnectivity,
            // 0 is no error code: a plugin that fails with it (the reference plugins do when a
            // child of theirs dies) has failed for a reason it could not name.
            0 | 999 => ErrorCode::Internal,
            n => ErrorCode::Plugin(n),
        }
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.code())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(ErrorCode::from_code(u32::deserialize(d)?))
    }
}

/// A CNI error: what a plugin prints on stdout when it fails, and what a delegate's error JSON
/// parses into.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub struct CniError {
    pub code: ErrorCode,
    pub msg: String,
    #[serde(default)]
    pub details: String,
}

/// The crate's result type.
pub type Result<T, E = CniError> = std::result::Result<T, E>;

impl CniError {
    pub fn new(code: ErrorCode, msg: impl Into<String>) -> Self {
        CniError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    /// Code 7.
    pub fn invalid_config(msg: impl Into<String>) -> Self {
        CniError::new(ErrorCode::InvalidConfig, msg)
    }

    /// Code 5.
    pub fn io(msg: impl Into<String>) -> Self {
        CniError::new(ErrorCode::Io, msg)
    }

    /// Code 6.
    pub fn decode(msg: impl Into<String>) -> Self {
        CniError::new(ErrorCode::Decode, msg)
    }

    /// Code 999.
    pub fn internal(msg: impl Into<String>) -> Self {
        CniError::new(ErrorCode::Internal, msg)
    }

    /// Code 11.
    pub fn try_again(msg: impl Into<String>) -> Self {
        CniError::new(ErrorCode::TryAgainLater, msg)
    }

    /// Code 4; the message always starts with the variable's name.
    pub fn invalid_env(var: &str, msg: impl Into<String>) -> Self {
        CniError::new(
            ErrorCode::InvalidEnvironment,
            format!("{var}: {}", msg.into()),
        )
    }

    /// Code 1.
    pub fn incompatible_version(msg: impl Into<String>) -> Self {
        CniError::new(ErrorCode::IncompatibleVersion, msg)
    }

    /// The JSON printed on stdout.
    pub fn to_json(&self, version: &str) -> Value {
        json!({
            "cniVersion": version,
            "code": self.code.code(),
            "msg": self.msg,
            "details": self.details,
        })
    }

    /// Prefixes the message with context, keeping the code.
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.msg = format!("{what}: {}", self.msg);
        self
    }
}

impl fmt::Display for CniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.details.is_empty() {
            write!(f, "{} (code {})", self.msg, self.code.code())
        } else {
            write!(
                f,
                "{}; {} (code {})",
                self.msg,
                self.details,
                self.code.code()
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips() {
        for n in [1, 2, 3, 4, 5, 6, 7, 8, 11, 50, 51, 999, 100, 150, 9] {
            assert_eq!(ErrorCode::from_code(n).code(), n);
        }
        // 0 is no error code: a failure that reports it is an internal one.
        assert_eq!(ErrorCode::from_code(0), ErrorCode::Internal);
        assert_eq!(ErrorCode::from_code(7), ErrorCode::InvalidConfig);
        assert_eq!(ErrorCode::from_code(123), ErrorCode::Plugin(123));
    }

    #[test]
    fn constructors_have_their_codes() {
        assert_eq!(CniError::invalid_config("x").code.code(), 7);
        assert_eq!(CniError::io("x").code.code(), 5);
        assert_eq!(CniError::decode("x").code.code(), 6);
        assert_eq!(CniError::internal("x").code.code(), 999);
        assert_eq!(CniError::try_again("x").code.code(), 11);
        assert_eq!(CniError::incompatible_version("x").code.code(), 1);
        let e = CniError::invalid_env("CNI_IFNAME", "too long");
        assert_eq!(e.code.code(), 4);
        assert!(e.msg.starts_with("CNI_IFNAME"));
    }

    #[test]
    fn json_shape_and_parse_back() {
        let e = CniError::invalid_config("bad subnet").with_details("ipam.subnet");
        let v = e.to_json("1.0.0");
        assert_eq!(
            v,
            json!({"cniVersion":"1.0.0","code":7,"msg":"bad subnet","details":"ipam.subnet"})
        );
        let back: CniError = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
        // A Go plugin omits details and cniVersion.
        let go: CniError = serde_json::from_str(r#"{"code":11,"msg":"busy"}"#).unwrap();
        assert_eq!(go, CniError::try_again("busy"));
        assert_eq!(go.to_string(), "busy (code 11)");
    }
}
