//! The CNI_* environment, validated as the reference skel does.
//!
//! Required per verb: ADD and CHECK need CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME
//! and CNI_PATH; DEL the same but CNI_NETNS may be empty; STATUS and GC need only CNI_COMMAND
//! and CNI_PATH; VERSION needs only CNI_COMMAND. CNI_ARGS is always optional. A value that is
//! given is validated even where it is optional. Every violation is code 4 naming the variable.
//!
//! Every value has a length limit (see the `MAX_*` constants), checked before anything else so
//! a huge value is refused without being copied into a message, a log or a record.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::{CniError, Result};

pub const CNI_COMMAND: &str = "CNI_COMMAND";
pub const CNI_CONTAINERID: &str = "CNI_CONTAINERID";
pub const CNI_NETNS: &str = "CNI_NETNS";
pub const CNI_IFNAME: &str = "CNI_IFNAME";
pub const CNI_ARGS: &str = "CNI_ARGS";
pub const CNI_PATH: &str = "CNI_PATH";

/// The six variables the protocol defines. Every other variable (CNI_NETNS_OVERRIDE,
/// TRACEPARENT, PATH, ...) is forwarded to delegates as it is.
pub const CNI_VARS: [&str; 6] = [
    CNI_COMMAND,
    CNI_CONTAINERID,
    CNI_NETNS,
    CNI_IFNAME,
    CNI_ARGS,
    CNI_PATH,
];

/// Environment variables as name/value pairs, in order.
pub type EnvVars = Vec<(String, String)>;

/// Longest interface name the kernel accepts (IFNAMSIZ - 1).
pub const MAX_IFNAME_LEN: usize = 15;

/// Longest CNI_CONTAINERID accepted, in bytes. Runtimes use 64 hex digits (containerd, CRI-O,
/// Docker); the spec sets no limit, so this leaves 16 times that for other runtimes while keeping
/// what the ID flows into (records, CNI_ARGS of delegates, logs, events) small. File names built
/// from an ID are hashed when long (`files::name_for`), so every accepted ID works for ADD and DEL.
pub const MAX_CONTAINER_ID_LEN: usize = 1024;
/// Longest CNI_NETNS accepted: PATH_MAX.
pub const MAX_NETNS_LEN: usize = 4096;
/// Longest CNI_ARGS accepted. Kubernetes sends four pairs of at most ~400 bytes in all (pod name
/// and namespace, pod UID, infra container ID); runtimes may add a few more.
pub const MAX_CNI_ARGS_LEN: usize = 16 * 1024;
/// Longest CNI_PATH accepted: a list of directories, each at most PATH_MAX.
pub const MAX_CNI_PATH_LEN: usize = 64 * 1024;

/// A CNI verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    Add,
    Del,
    Check,
    Status,
    Gc,
    Version,
}

impl Command {
    pub fn as_str(&self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Status => "STATUS",
            Command::Gc => "GC",
            Command::Version => "VERSION",
        }
    }

    fn needs_container(&self) -> bool {
        matches!(self, Command::Add | Command::Del | Command::Check)
    }

    fn needs_netns(&self) -> bool {
        matches!(self, Command::Add | Command::Check)
    }

    fn needs_path(&self) -> bool {
        !matches!(self, Command::Version)
    }
}

impl FromStr for Command {
    type Err = CniError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "ADD" => Ok(Command::Add),
            "DEL" => Ok(Command::Del),
            "CHECK" => Ok(Command::Check),
            "STATUS" => Ok(Command::Status),
            "GC" => Ok(Command::Gc),
            "VERSION" => Ok(Command::Version),
            other => Err(CniError::invalid_env(
                CNI_COMMAND,
                format!("unknown command {other:?}"),
            )),
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The validated CNI_* variables of one invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniEnv {
    pub command: Command,
    /// Empty where the verb does not need it (STATUS, GC, VERSION).
    pub container_id: String,
    /// None when CNI_NETNS is empty (allowed for DEL, STATUS, GC, VERSION).
    pub netns: Option<PathBuf>,
    /// Empty where the verb does not need it.
    pub ifname: String,
    /// CNI_ARGS pairs in order.
    pub args: Vec<(String, String)>,
    /// CNI_PATH directories in order.
    pub path: Vec<PathBuf>,
}

/// Refuses a value of `var` longer than `max` bytes, naming the variable and the limit (never
/// quoting the value).
fn check_len(var: &str, value: &str, max: usize) -> Result<()> {
    if value.len() > max {
        return Err(CniError::invalid_env(
            var,
            format!(
                "is {} bytes long, more than the limit of {max}",
                value.len()
            ),
        ));
    }
    Ok(())
}

/// `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, as skel checks CNI_CONTAINERID, and at most
/// [`MAX_CONTAINER_ID_LEN`] bytes.
pub fn validate_container_id(s: &str) -> Result<()> {
    check_len(CNI_CONTAINERID, s, MAX_CONTAINER_ID_LEN)?;
    let mut chars = s.chars();
    match chars.next() {
        None => Err(CniError::invalid_env(CNI_CONTAINERID, "is empty")),
        Some(c) if !c.is_ascii_alphanumeric() => Err(CniError::invalid_env(
            CNI_CONTAINERID,
            format!("{s:?} must start with a letter or digit"),
        )),
        Some(_) => match chars.find(|c| !(c.is_ascii_alphanumeric() || "_.-".contains(*c))) {
            Some(bad) => Err(CniError::invalid_env(
                CNI_CONTAINERID,
                format!("{s:?} contains invalid character {bad:?}"),
            )),
            None => Ok(()),
        },
    }
}

/// Non-empty, at most 15 bytes, not "." or "..", no '/', ':' or whitespace.
pub fn validate_ifname(s: &str) -> Result<()> {
    if s.is_empty() {
        return Err(CniError::invalid_env(CNI_IFNAME, "is empty"));
    }
    if s.len() > MAX_IFNAME_LEN {
        return Err(CniError::invalid_env(
            CNI_IFNAME,
            format!("{s:?} is longer than {MAX_IFNAME_LEN} bytes"),
        ));
    }
    if s == "." || s == ".." {
        return Err(CniError::invalid_env(
            CNI_IFNAME,
            format!("{s:?} is not a valid interface name"),
        ));
    }
    if let Some(bad) = s
        .chars()
        .find(|c| *c == '/' || *c == ':' || c.is_whitespace())
    {
        return Err(CniError::invalid_env(
            CNI_IFNAME,
            format!("{s:?} contains invalid character {bad:?}"),
        ));
    }
    Ok(())
}

/// Parses CNI_ARGS `K=V;K=V`. The value is everything after the first '='; empty segments
/// (a trailing ';') are skipped; a segment without '=' or with an empty key is an error.
pub fn parse_cni_args(s: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for pair in s.split(';').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some((k, v)) if !k.is_empty() => out.push((k.to_string(), v.to_string())),
            _ => {
                return Err(CniError::invalid_env(
                    CNI_ARGS,
                    format!("invalid pair {pair:?}, expected KEY=VALUE"),
                ));
            }
        }
    }
    Ok(out)
}

/// Splits `vars` into the CNI_* protocol variables and everything else (to forward).
pub fn split_vars<I: IntoIterator<Item = (String, String)>>(vars: I) -> (EnvVars, EnvVars) {
    vars.into_iter()
        .partition(|(k, _)| CNI_VARS.contains(&k.as_str()))
}

impl CniEnv {
    /// Validates the variables for the verb in CNI_COMMAND. Later duplicates win.
    pub fn from_vars<I: IntoIterator<Item = (String, String)>>(vars: I) -> Result<CniEnv> {
        let mut get: [Option<String>; 6] = Default::default();
        for (k, v) in vars {
            if let Some(i) = CNI_VARS.iter().position(|n| *n == k) {
                get[i] = Some(v);
            }
        }
        let [command, container_id, netns, ifname, args, path] = get;
        let command: Command = match command.as_deref() {
            None | Some("") => return Err(CniError::invalid_env(CNI_COMMAND, "is not set")),
            Some(c) => c.parse()?,
        };
        let container_id = container_id.unwrap_or_default();
        let netns = netns.unwrap_or_default();
        let ifname = ifname.unwrap_or_default();
        let path = path.unwrap_or_default();
        let args = args.unwrap_or_default();
        check_len(CNI_NETNS, &netns, MAX_NETNS_LEN)?;
        check_len(CNI_ARGS, &args, MAX_CNI_ARGS_LEN)?;
        check_len(CNI_PATH, &path, MAX_CNI_PATH_LEN)?;

        let mut missing = Vec::new();
        if command.needs_container() {
            if container_id.is_empty() {
                missing.push(CNI_CONTAINERID);
            }
            if ifname.is_empty() {
                missing.push(CNI_IFNAME);
            }
        }
        if command.needs_netns() && netns.is_empty() {
            missing.push(CNI_NETNS);
        }
        if command.needs_path() && path.is_empty() {
            missing.push(CNI_PATH);
        }
        if !missing.is_empty() {
            return Err(CniError::invalid_env(
                &missing.join(","),
                format!("required for {command} but not set"),
            ));
        }
        if !container_id.is_empty() {
            validate_container_id(&container_id)?;
        }
        if !ifname.is_empty() {
            validate_ifname(&ifname)?;
        }
        Ok(CniEnv {
            command,
            container_id,
            netns: (!netns.is_empty()).then(|| PathBuf::from(netns)),
            ifname,
            args: parse_cni_args(&args)?,
            path: std::env::split_paths(&path)
                .filter(|p| !p.as_os_str().is_empty())
                .collect(),
        })
    }

    /// Reads and validates the process environment (non-UTF-8 values are read lossily).
    pub fn from_process() -> Result<CniEnv> {
        CniEnv::from_vars(process_vars())
    }

    /// A value from CNI_ARGS; the last occurrence wins.
    pub fn arg(&self, key: &str) -> Option<&str> {
        self.args
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The CNI_ARGS string.
    pub fn args_string(&self) -> String {
        self.args
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";")
    }

    /// The CNI_PATH string.
    pub fn path_string(&self) -> String {
        self.path
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(":")
    }

    /// Back to all six CNI_* variables, for a delegate.
    pub fn to_vars(&self) -> Vec<(String, String)> {
        vec![
            (CNI_COMMAND.into(), self.command.as_str().into()),
            (CNI_CONTAINERID.into(), self.container_id.clone()),
            (
                CNI_NETNS.into(),
                self.netns
                    .as_ref()
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            ),
            (CNI_IFNAME.into(), self.ifname.clone()),
            (CNI_ARGS.into(), self.args_string()),
            (CNI_PATH.into(), self.path_string()),
        ]
    }
}

/// The process environment as strings.
pub fn process_vars() -> Vec<(String, String)> {
    std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn full(cmd: &str) -> Vec<(String, String)> {
        vars(&[
            ("CNI_COMMAND", cmd),
            ("CNI_CONTAINERID", "abc-1.2_x"),
            ("CNI_NETNS", "/var/run/netns/x"),
            ("CNI_IFNAME", "net1"),
            ("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=p;IP=10.0.0.5"),
            ("CNI_PATH", "/opt/cni/bin::/usr/lib/cni"),
            ("TRACEPARENT", "00-abc"),
        ])
    }

    fn err_of(v: Vec<(String, String)>) -> CniError {
        CniEnv::from_vars(v).unwrap_err()
    }

    #[test]
    fn full_add() {
        let env = CniEnv::from_vars(full("ADD")).unwrap();
        assert_eq!(env.command, Command::Add);
        assert_eq!(env.container_id, "abc-1.2_x");
        assert_eq!(env.netns, Some(PathBuf::from("/var/run/netns/x")));
        assert_eq!(env.arg("IP"), Some("10.0.0.5"));
        assert_eq!(env.arg("IgnoreUnknown"), Some("1"));
        assert_eq!(env.arg("nope"), None);
        assert_eq!(
            env.path,
            vec![PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")]
        );
        let back = CniEnv::from_vars(env.to_vars()).unwrap();
        assert_eq!(back, env);
    }

    #[test]
    fn command_rules() {
        for c in ["ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION"] {
            let cmd: Command = c.parse().unwrap();
            assert_eq!(cmd.as_str(), c);
        }
        let e = err_of(vars(&[("CNI_COMMAND", "FOO")]));
        assert_eq!(e.code.code(), 4);
        assert!(e.msg.contains("CNI_COMMAND"));
        let e = err_of(vars(&[]));
        assert_eq!(e.code.code(), 4);
        assert!(e.msg.contains("CNI_COMMAND"));
    }

    #[test]
    fn required_per_verb() {
        let only = |cmd: &str, drop: &str| {
            let v: Vec<_> = full(cmd).into_iter().filter(|(k, _)| k != drop).collect();
            CniEnv::from_vars(v)
        };
        for cmd in ["ADD", "CHECK", "DEL"] {
            for var in [CNI_CONTAINERID, CNI_IFNAME, CNI_PATH] {
                let e = only(cmd, var).unwrap_err();
                assert_eq!(e.code.code(), 4, "{cmd} {var}");
                assert!(e.msg.contains(var), "{cmd} {var}: {}", e.msg);
            }
        }
        for cmd in ["ADD", "CHECK"] {
            let e = only(cmd, CNI_NETNS).unwrap_err();
            assert!(e.msg.contains(CNI_NETNS));
        }
        let del = only("DEL", CNI_NETNS).unwrap();
        assert_eq!(del.netns, None);
        for cmd in ["STATUS", "GC"] {
            let env = CniEnv::from_vars(vars(&[("CNI_COMMAND", cmd), ("CNI_PATH", "/x")])).unwrap();
            assert_eq!(env.container_id, "");
            let e = err_of(vars(&[("CNI_COMMAND", cmd)]));
            assert!(e.msg.contains(CNI_PATH));
        }
        assert!(CniEnv::from_vars(vars(&[("CNI_COMMAND", "VERSION")])).is_ok());
        // Several missing: all named.
        let e = err_of(vars(&[("CNI_COMMAND", "ADD")]));
        for var in [CNI_CONTAINERID, CNI_IFNAME, CNI_NETNS, CNI_PATH] {
            assert!(e.msg.contains(var), "{}", e.msg);
        }
    }

    #[test]
    fn container_id_rules() {
        for ok in ["a", "0", "abc_DEF.1-2", "Z..--__"] {
            assert!(validate_container_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "_a", ".a", "a b", "a/b", "a:b", "ä", "a\n"] {
            let e = validate_container_id(bad).unwrap_err();
            assert_eq!(e.code.code(), 4, "{bad}");
            assert!(e.msg.contains(CNI_CONTAINERID));
        }
        let mut v = full("ADD");
        v[1].1 = "-bad".into();
        assert!(err_of(v).msg.contains(CNI_CONTAINERID));
    }

    #[test]
    fn length_limits_name_the_variable_and_the_limit() {
        // At the limit: accepted, for every verb that carries the variable.
        let at_limit = "a".repeat(MAX_CONTAINER_ID_LEN);
        assert!(validate_container_id(&at_limit).is_ok());
        let cases = [
            (1, CNI_CONTAINERID, MAX_CONTAINER_ID_LEN, "a".to_string()),
            (2, CNI_NETNS, MAX_NETNS_LEN, "/".to_string()),
            (4, CNI_ARGS, MAX_CNI_ARGS_LEN, "K=".to_string()),
            (5, CNI_PATH, MAX_CNI_PATH_LEN, "/".to_string()),
        ];
        for (index, var, max, prefix) in cases {
            for cmd in ["ADD", "DEL", "CHECK"] {
                let mut ok = full(cmd);
                let fill = "x".repeat(max - prefix.len());
                ok[index].1 = format!("{prefix}{fill}");
                assert!(CniEnv::from_vars(ok).is_ok(), "{var} at {max} bytes");
                let mut over = full(cmd);
                over[index].1 = format!("{prefix}{fill}x");
                let e = err_of(over);
                assert_eq!(e.code.code(), 4, "{var}");
                assert!(e.msg.starts_with(var), "{}", e.msg);
                assert!(e.msg.contains(&max.to_string()), "{}", e.msg);
                assert!(!e.msg.contains("xxxxxxxx"), "quotes the value: {}", e.msg);
            }
        }
        // A huge ID is refused before its characters are looked at (and never quoted).
        let e = validate_container_id(&"-".repeat(MAX_CONTAINER_ID_LEN + 1)).unwrap_err();
        assert!(e.msg.contains("1025 bytes"), "{}", e.msg);
        assert!(!e.msg.contains("---"), "{}", e.msg);
    }

    #[test]
    fn ifname_rules() {
        for ok in ["eth0", "a", "net1.100", "123456789012345", "a-b_c", "é"] {
            assert!(validate_ifname(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "1234567890123456",
            "a/b",
            "a:b",
            "a b",
            "a\tb",
            "a\u{a0}b",
            "ééééééééé",
        ] {
            let e = validate_ifname(bad).unwrap_err();
            assert_eq!(e.code.code(), 4, "{bad:?}");
            assert!(e.msg.contains(CNI_IFNAME));
        }
        let mut v = full("DEL");
        v[3].1 = "a:b".into();
        assert!(err_of(v).msg.contains(CNI_IFNAME));
    }

    #[test]
    fn args_rules() {
        assert_eq!(parse_cni_args("").unwrap(), vec![]);
        assert_eq!(
            parse_cni_args("A=1;B=x=y;").unwrap(),
            vec![("A".into(), "1".into()), ("B".into(), "x=y".into())]
        );
        for bad in ["A", "=1", "A=1;B"] {
            let e = parse_cni_args(bad).unwrap_err();
            assert_eq!(e.code.code(), 4);
            assert!(e.msg.contains(CNI_ARGS));
        }
        let mut v = full("ADD");
        v[4].1 = "broken".into();
        assert!(err_of(v).msg.contains(CNI_ARGS));
    }

    #[test]
    fn split_keeps_non_cni_vars() {
        let (cni, other) = split_vars(
            full("ADD")
                .into_iter()
                .chain(vars(&[("CNI_NETNS_OVERRIDE", "1")])),
        );
        assert_eq!(cni.len(), 6);
        assert_eq!(other.len(), 2);
        assert!(other.iter().any(|(k, _)| k == "TRACEPARENT"));
        assert!(other.iter().any(|(k, _)| k == "CNI_NETNS_OVERRIDE"));
    }
}
