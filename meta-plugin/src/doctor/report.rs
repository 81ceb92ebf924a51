//! What `multinet doctor` found, and the pure rules that turn facts into findings: which file the
//! runtime reads, which permissions multinet needs, whether a pod's links match its record. No
//! I/O here; `node` and `pod` gather the facts.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

/// How a check came out. Only `Fail` makes `multinet doctor` exit non-zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// Worth knowing, harmless to running pods.
    Warn,
    Fail,
    /// Not asked on this node (nothing configured for it, or an earlier check failed).
    Skip,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        }
    }
}

/// One check: what was asked, what was found, and how to fix it when it is not fine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    pub fn ok(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    pub fn skip(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            status: Status::Skip,
            ..Check::ok(name, detail)
        }
    }

    pub fn fail(
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            status: Status::Fail,
            fix: Some(fix.into()),
            ..Check::ok(name, detail)
        }
    }

    pub fn warn(
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            status: Status::Warn,
            ..Check::fail(name, detail, fix)
        }
    }
}

/// Every check of one run, in the order they were asked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    pub fn push(&mut self, check: Check) {
        self.checks.push(check);
    }

    pub fn failed(&self) -> bool {
        self.checks.iter().any(|c| c.status == Status::Fail)
    }

    /// The process exit code: 0 when no check failed, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        i32::from(self.failed())
    }

    /// `{"ok": bool, "checks": [{name, status, detail, fix?}]}` for tools.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"ok": !self.failed(), "checks": self.checks})
    }
}

/// One line per check: status, name, what was found, and its fix after `-> fix:`.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for c in &self.checks {
            write!(
                f,
                "{:<4}  {:<width$}  {}",
                c.status.label(),
                c.name,
                c.detail
            )?;
            if let Some(fix) = &c.fix {
                write!(f, " -> fix: {fix}")?;
            }
            writeln!(f)?;
        }
        let failed = self
            .checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .count();
        let warned = self
            .checks
            .iter()
            .filter(|c| c.status == Status::Warn)
            .count();
        writeln!(
            f,
            "{} checks: {failed} failed, {warned} warnings",
            self.checks.len()
        )
    }
}

/// The file of a CNI config folder the runtime loads: libcni's rule (containerd, CRI-O) is the
/// lexically first `.conf`, `.conflist` or `.json` file.
pub fn runtime_choice<I: IntoIterator<Item = String>>(names: I) -> Option<String> {
    names
        .into_iter()
        .filter(|n| n.ends_with(".conf") || n.ends_with(".conflist") || n.ends_with(".json"))
        .min()
}

/// One API permission multinet needs, cluster-wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permission {
    pub verb: &'static str,
    pub group: &'static str,
    pub resource: &'static str,
    pub subresource: &'static str,
    /// What multinet does with it, for the check's line.
    pub why: &'static str,
}

impl Permission {
    /// `verb resource[/subresource]`, as `kubectl auth can-i` spells it.
    pub fn spelled(&self) -> String {
        let resource = match (self.group, self.subresource) {
            ("", "") => self.resource.to_string(),
            ("", sub) => format!("{}/{sub}", self.resource),
            (group, "") => format!("{}.{group}", self.resource),
            (group, sub) => format!("{}.{group}/{sub}", self.resource),
        };
        format!("{} {resource}", self.verb)
    }
}

/// What multinet asks of the API (deploy/ grants exactly these).
pub const PERMISSIONS: &[Permission] = &[
    Permission {
        verb: "get",
        group: "",
        resource: "pods",
        subresource: "",
        why: "read a pod's network annotations",
    },
    Permission {
        verb: "get",
        group: "k8s.cni.cncf.io",
        resource: "network-attachment-definitions",
        subresource: "",
        why: "read the NADs a pod selects",
    },
    Permission {
        verb: "list",
        group: "k8s.cni.cncf.io",
        resource: "network-attachment-definitions",
        subresource: "",
        why: "find NADs",
    },
    Permission {
        verb: "patch",
        group: "",
        resource: "pods",
        subresource: "status",
        why: "write the pod's network-status",
    },
    Permission {
        verb: "create",
        group: "",
        resource: "events",
        subresource: "",
        why: "tell a pod what happened to its networks",
    },
    Permission {
        verb: "get",
        group: "resource.k8s.io",
        resource: "resourceclaims",
        subresource: "",
        why: "read the devices DRA allocated to a pod",
    },
    Permission {
        verb: "list",
        group: "resource.k8s.io",
        resource: "resourceslices",
        subresource: "",
        why: "read the device IDs a DRA driver published",
    },
    Permission {
        verb: "update",
        group: "resource.k8s.io",
        resource: "resourceclaims",
        subresource: "status",
        why: "write a DRA device's network data into its claim",
    },
];

/// How one recorded interface compares with the pod's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterfaceState {
    /// Present, with the recorded MAC (or none was recorded).
    Matches,
    Missing,
    /// Present with another MAC than the recorded one.
    OtherMac {
        recorded: String,
        found: String,
    },
}

/// Compares the recorded interfaces (`ifname` → recorded MAC) with the namespace's links
/// (`name` → MAC).
pub fn compare_interfaces(
    recorded: &[(String, Option<String>)],
    links: &BTreeMap<String, Option<String>>,
) -> Vec<(String, InterfaceState)> {
    recorded
        .iter()
        .map(|(ifname, mac)| {
            let state = match (links.get(ifname), mac) {
                (None, _) => InterfaceState::Missing,
                (Some(Some(found)), Some(want)) if !found.eq_ignore_ascii_case(want) => {
                    InterfaceState::OtherMac {
                        recorded: want.clone(),
                        found: found.clone(),
                    }
                }
                (Some(_), _) => InterfaceState::Matches,
            };
            (ifname.clone(), state)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtime_reads_the_lexically_first_config() {
        let names = [
            "10-flannel.conflist",
            "00-multinet.conflist",
            "05-x.json",
            "README",
        ]
        .map(String::from);
        assert_eq!(
            runtime_choice(names).as_deref(),
            Some("00-multinet.conflist")
        );
        let names = ["99-a.conf", "50-b.json", "notes.txt"].map(String::from);
        assert_eq!(runtime_choice(names).as_deref(), Some("50-b.json"));
        assert_eq!(runtime_choice(["x.yaml".to_string()]), None);
    }

    #[test]
    fn a_failed_check_fails_the_report_and_every_line_names_its_fix() {
        let mut report = Report::default();
        report.push(Check::ok("config", "fine"));
        report.push(Check::warn("temp files", "1 stray", "delete it"));
        assert_eq!(report.exit_code(), 0);
        report.push(Check::fail("readiness", "missing", "start the network"));
        assert_eq!(report.exit_code(), 1);
        let text = report.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[2].starts_with("FAIL  readiness "), "{text}");
        assert!(
            lines[2].ends_with("missing -> fix: start the network"),
            "{text}"
        );
        assert_eq!(lines[3], "3 checks: 1 failed, 1 warnings");
        let json = report.to_json();
        assert_eq!(json["ok"], false);
        assert_eq!(json["checks"][2]["status"], "fail");
        assert_eq!(json["checks"][0].get("fix"), None);
    }

    #[test]
    fn permissions_are_spelled_as_kubectl_auth_can_i_takes_them() {
        let spelled: Vec<String> = PERMISSIONS.iter().map(Permission::spelled).collect();
        assert_eq!(
            spelled,
            vec![
                "get pods",
                "get network-attachment-definitions.k8s.cni.cncf.io",
                "list network-attachment-definitions.k8s.cni.cncf.io",
                "patch pods/status",
                "create events",
                "get resourceclaims.resource.k8s.io",
                "list resourceslices.resource.k8s.io",
                "update resourceclaims.resource.k8s.io/status",
            ]
        );
    }

    #[test]
    fn interfaces_are_compared_by_name_and_mac() {
        let recorded = vec![
            ("eth0".to_string(), None),
            ("net1".to_string(), Some("AA:bb:cc:dd:ee:01".to_string())),
            ("net2".to_string(), Some("aa:bb:cc:dd:ee:02".to_string())),
            ("net3".to_string(), None),
        ];
        let links = BTreeMap::from([
            ("eth0".to_string(), Some("02:00:00:00:00:01".to_string())),
            ("net1".to_string(), Some("aa:bb:cc:dd:ee:01".to_string())),
            ("net2".to_string(), Some("aa:bb:cc:dd:ee:09".to_string())),
        ]);
        let states: Vec<InterfaceState> = compare_interfaces(&recorded, &links)
            .into_iter()
            .map(|(_, s)| s)
            .collect();
        assert_eq!(
            states,
            vec![
                InterfaceState::Matches,
                InterfaceState::Matches,
                InterfaceState::OtherMac {
                    recorded: "aa:bb:cc:dd:ee:02".into(),
                    found: "aa:bb:cc:dd:ee:09".into()
                },
                InterfaceState::Missing,
            ]
        );
    }
}
