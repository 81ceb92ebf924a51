//! Command-line flags, each with an environment variable as fallback.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use multinet_crds::RESOURCE_NAME_ANNOTATION;

use crate::control::{ControlMap, DEFAULT_CONFIGMAP};
use crate::error::WebhookError;
use crate::isolate::IsolationPolicy;
use crate::mutate::InjectorOptions;
use crate::nads::KubeAccess;
use crate::server::{DEFAULT_CERT_FILE, DEFAULT_KEY_FILE, DEFAULT_PORT, WebhookConfig};
use crate::tls::CertFiles;

/// multinet's admission webhooks: /validate (NADs), /isolate (pod network annotations),
/// /mutate (device-plugin resources for the networks a pod selects), /healthz, /readyz.
#[derive(Debug, Clone, Parser)]
#[command(name = "multinet-webhook", version)]
pub struct Flags {
    /// Address and port to serve HTTPS on.
    #[arg(long, env = "MULTINET_WEBHOOK_LISTEN", default_value_t = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), DEFAULT_PORT))]
    pub listen: SocketAddr,
    /// PEM certificate chain, leaf first; reloaded when the file changes.
    #[arg(long, env = "MULTINET_WEBHOOK_TLS_CERT_FILE", default_value = DEFAULT_CERT_FILE)]
    pub tls_cert_file: PathBuf,
    /// PEM private key; reloaded when the file changes.
    #[arg(long, env = "MULTINET_WEBHOOK_TLS_KEY_FILE", default_value = DEFAULT_KEY_FILE)]
    pub tls_key_file: PathBuf,
    /// Seconds between checks of the certificate files for a change.
    #[arg(
        long,
        env = "MULTINET_WEBHOOK_CERT_POLL_SECONDS",
        default_value_t = 5.0
    )]
    pub cert_poll_seconds: f64,
    /// Kubeconfig to reach the API server with; without it, the in-cluster service account.
    #[arg(long, env = "MULTINET_WEBHOOK_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Seconds to wait for one API request.
    #[arg(
        long,
        env = "MULTINET_WEBHOOK_API_TIMEOUT_SECONDS",
        default_value_t = 5.0
    )]
    pub api_timeout_seconds: f64,
    /// Seconds a NAD read from the API is reused.
    #[arg(
        long,
        env = "MULTINET_WEBHOOK_NAD_CACHE_SECONDS",
        default_value_t = 5.0
    )]
    pub nad_cache_seconds: f64,
    /// The webhook's own namespace: /mutate leaves its pods alone.
    #[arg(long, env = "POD_NAMESPACE", default_value = "kube-system")]
    pub namespace: String,
    /// Namespace of multinet's own NADs: where a default-network without a namespace is found.
    #[arg(
        long,
        env = "MULTINET_WEBHOOK_MULTINET_NAMESPACE",
        default_value = "kube-system"
    )]
    pub multinet_namespace: String,
    /// /isolate refuses pods selecting networks from another namespace (not a global one).
    #[arg(long, env = "MULTINET_WEBHOOK_NAMESPACE_ISOLATION")]
    pub namespace_isolation: bool,
    /// Namespaces whose networks every pod may use under namespace isolation (comma-separated).
    #[arg(
        long,
        env = "MULTINET_WEBHOOK_GLOBAL_NAMESPACES",
        value_delimiter = ',',
        default_value = "default"
    )]
    pub global_namespaces: Vec<String>,
    /// NAD annotations naming a device-plugin resource (comma-separated).
    #[arg(long, env = "MULTINET_WEBHOOK_RESOURCE_NAME_KEYS", value_delimiter = ',', default_value = RESOURCE_NAME_ANNOTATION)]
    pub resource_name_keys: Vec<String>,
    /// Add to resources a container already asks for, instead of leaving them alone.
    #[arg(long, env = "MULTINET_WEBHOOK_HONOR_RESOURCES")]
    pub honor_resources: bool,
    /// Expose each container's hugepages requests and limits (MiB) in the podnetinfo volume.
    #[arg(long, env = "MULTINET_WEBHOOK_INJECT_HUGEPAGE_DOWNWARD_API")]
    pub inject_hugepage_downward_api: bool,
    /// ConfigMap in the webhook's namespace whose `config.json` switches features at run time;
    /// an empty name reads none.
    #[arg(long, env = "MULTINET_WEBHOOK_CONTROL_CONFIGMAP", default_value = DEFAULT_CONFIGMAP)]
    pub control_configmap: String,
    /// Seconds between reads of the control ConfigMap.
    #[arg(
        long,
        env = "MULTINET_WEBHOOK_CONTROL_POLL_SECONDS",
        default_value_t = 10.0
    )]
    pub control_poll_seconds: f64,
    /// Serve Prometheus metrics over plain HTTP at ADDRESS/metrics (e.g. 0.0.0.0:9092); off
    /// unless given.
    #[arg(long, env = "MULTINET_WEBHOOK_METRICS_ADDRESS", value_name = "ADDRESS")]
    pub metrics_address: Option<SocketAddr>,
    /// Log filter (tracing-subscriber syntax: info, debug, multinet_webhook=debug, ...).
    #[arg(long, env = "MULTINET_WEBHOOK_LOG", default_value = "info")]
    pub log: String,
}

fn seconds(name: &str, value: f64) -> Result<Duration, WebhookError> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            WebhookError::Config(format!(
                "--{name} must be a positive number of seconds, not {value}"
            ))
        })
}

fn list(values: Vec<String>) -> Vec<String> {
    values
        .into_iter()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect()
}

impl Flags {
    /// The server configuration these flags describe.
    pub fn config(&self) -> Result<WebhookConfig, WebhookError> {
        let resource_name_keys = list(self.resource_name_keys.clone());
        if resource_name_keys.is_empty() {
            return Err(WebhookError::Config(
                "--resource-name-keys names no annotation".to_owned(),
            ));
        }
        let mut skip_namespaces = vec!["kube-system".to_owned()];
        if !skip_namespaces.contains(&self.namespace) {
            skip_namespaces.push(self.namespace.clone());
        }
        Ok(WebhookConfig {
            listen: self.listen,
            cert_files: CertFiles {
                cert: self.tls_cert_file.clone(),
                key: self.tls_key_file.clone(),
            },
            cert_poll_interval: seconds("cert-poll-seconds", self.cert_poll_seconds)?,
            kube: match &self.kubeconfig {
                Some(path) => KubeAccess::Kubeconfig(path.clone()),
                None => KubeAccess::InCluster,
            },
            api_timeout: seconds("api-timeout-seconds", self.api_timeout_seconds)?,
            nad_cache_ttl: seconds("nad-cache-seconds", self.nad_cache_seconds)?,
            isolation: IsolationPolicy {
                enabled: self.namespace_isolation,
                global_namespaces: list(self.global_namespaces.clone()),
            },
            injector: InjectorOptions {
                resource_name_keys,
                honor_resources: self.honor_resources,
                skip_namespaces,
                default_network_namespace: self.multinet_namespace.clone(),
                hugepages_downward_api: self.inject_hugepage_downward_api,
                user_injections: Default::default(),
            },
            control: match self.control_configmap.trim() {
                "" => None,
                name => Some(ControlMap {
                    namespace: self.namespace.clone(),
                    name: name.to_owned(),
                    interval: seconds("control-poll-seconds", self.control_poll_seconds)?,
                }),
            },
            metrics_listen: self.metrics_address,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Flags {
        Flags::try_parse_from(std::iter::once("multinet-webhook").chain(args.iter().copied()))
            .unwrap()
    }

    #[test]
    fn defaults() {
        let config = parse(&[]).config().unwrap();
        assert_eq!(config.listen, "0.0.0.0:8443".parse().unwrap());
        assert_eq!(config.cert_files.cert, PathBuf::from(DEFAULT_CERT_FILE));
        assert_eq!(config.kube, KubeAccess::InCluster);
        assert_eq!(config.isolation, IsolationPolicy::default());
        assert_eq!(config.injector, InjectorOptions::default());
        assert_eq!(config.cert_poll_interval, Duration::from_secs(5));
        assert_eq!(config.metrics_listen, None, "metrics are off unless asked");
    }

    #[test]
    fn every_flag_lands_in_the_config() {
        let config = parse(&[
            "--listen=127.0.0.1:9443",
            "--tls-cert-file=/c",
            "--tls-key-file=/k",
            "--cert-poll-seconds=0.5",
            "--kubeconfig=/kc",
            "--namespace=multinet",
            "--multinet-namespace=net-system",
            "--namespace-isolation",
            "--global-namespaces=default, shared,",
            "--resource-name-keys=a/b,c/d",
            "--honor-resources",
            "--nad-cache-seconds=1",
            "--api-timeout-seconds=2",
            "--metrics-address=127.0.0.1:9092",
            "--inject-hugepage-downward-api",
            "--control-configmap=switches",
            "--control-poll-seconds=3",
        ])
        .config()
        .unwrap();
        assert!(config.injector.hugepages_downward_api);
        assert_eq!(
            config.control,
            Some(ControlMap {
                namespace: "multinet".into(),
                name: "switches".into(),
                interval: Duration::from_secs(3),
            })
        );
        assert_eq!(
            parse(&["--control-configmap="]).config().unwrap().control,
            None
        );
        assert_eq!(config.listen.port(), 9443);
        assert_eq!(config.cert_files.key, PathBuf::from("/k"));
        assert_eq!(config.cert_poll_interval, Duration::from_millis(500));
        assert_eq!(config.kube, KubeAccess::Kubeconfig("/kc".into()));
        assert!(config.isolation.enabled);
        assert_eq!(config.isolation.global_namespaces, ["default", "shared"]);
        assert_eq!(config.injector.resource_name_keys, ["a/b", "c/d"]);
        assert!(config.injector.honor_resources);
        assert_eq!(config.injector.skip_namespaces, ["kube-system", "multinet"]);
        assert_eq!(config.injector.default_network_namespace, "net-system");
        assert_eq!(config.nad_cache_ttl, Duration::from_secs(1));
        assert_eq!(config.api_timeout, Duration::from_secs(2));
        assert_eq!(
            config.metrics_listen,
            Some("127.0.0.1:9092".parse().unwrap())
        );
    }

    #[test]
    fn unusable_values_are_refused() {
        let err = parse(&["--cert-poll-seconds=0"]).config().unwrap_err();
        assert!(
            err.to_string()
                .contains("--cert-poll-seconds must be a positive"),
            "{err}"
        );
        let err = parse(&["--resource-name-keys=,"]).config().unwrap_err();
        assert!(err.to_string().contains("--resource-name-keys"), "{err}");
        assert!(Flags::try_parse_from(["multinet-webhook", "--listen=nowhere"]).is_err());
    }
}
