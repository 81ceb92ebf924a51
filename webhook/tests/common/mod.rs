//! Shared by the end-to-end tests: throw-away certificates, an HTTPS client that trusts only
//! the CAs it is given, and AdmissionReview bodies.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use multinet_webhook::WebhookConfig;
use multinet_webhook::control::ControlMap;
use multinet_webhook::isolate::IsolationPolicy;
use multinet_webhook::mutate::InjectorOptions;
use multinet_webhook::nads::KubeAccess;
use multinet_webhook::tls::CertFiles;

/// A CA and a server certificate it signed for 127.0.0.1.
pub struct TestCert {
    pub ca_pem: String,
    /// Leaf then CA, as a Secret's tls.crt holds them.
    pub chain_pem: String,
    pub key_pem: String,
    pub leaf_der: Vec<u8>,
}

impl TestCert {
    pub fn generate(label: &str) -> TestCert {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, format!("{label} CA"));
        ca_params.distinguished_name = name;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

        let mut leaf_params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, label);
        leaf_params.distinguished_name = name;
        leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = leaf_params.signed_by(&leaf_key, &ca).unwrap();
        TestCert {
            ca_pem: ca.pem(),
            chain_pem: format!("{}{}", leaf.pem(), ca.pem()),
            key_pem: leaf_key.serialize_pem(),
            leaf_der: leaf.der().to_vec(),
        }
    }

    pub fn write(&self, files: &CertFiles) {
        std::fs::write(&files.cert, &self.chain_pem).unwrap();
        std::fs::write(&files.key, &self.key_pem).unwrap();
    }
}

pub fn cert_files(dir: &Path) -> CertFiles {
    CertFiles {
        cert: dir.join("tls.crt"),
        key: dir.join("tls.key"),
    }
}

/// A config listening on a free loopback port, reaching the API through `kubeconfig`.
pub fn config(files: CertFiles, kubeconfig: &Path) -> WebhookConfig {
    WebhookConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        cert_files: files,
        cert_poll_interval: Duration::from_millis(100),
        kube: KubeAccess::Kubeconfig(kubeconfig.to_owned()),
        api_timeout: Duration::from_secs(3),
        nad_cache_ttl: Duration::from_secs(60),
        isolation: IsolationPolicy {
            enabled: true,
            global_namespaces: vec!["default".to_owned()],
        },
        injector: InjectorOptions::default(),
        control: Some(ControlMap {
            namespace: "multinet".to_owned(),
            name: "multinet-webhook-control".to_owned(),
            interval: Duration::from_millis(100),
        }),
        metrics_listen: None,
    }
}

/// What one HTTPS exchange gave.
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    /// The leaf certificate the server presented.
    pub leaf_der: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// One request on a new connection (so a new handshake), trusting only `roots`.
pub async fn https(
    addr: SocketAddr,
    roots: &[&str],
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> Result<Reply, String> {
    let mut store = rustls::RootCertStore::empty();
    for pem in roots {
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            store.add(cert.unwrap()).unwrap();
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let tls = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let leaf_der = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes()
        .to_vec();
    Ok(Reply {
        status,
        body,
        leaf_der,
    })
}

/// An AdmissionReview v1 request as the API server sends it.
pub fn review(
    uid: &str,
    group: &str,
    kind: &str,
    resource: &str,
    namespace: &str,
    object: Value,
) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": group, "version": "v1", "kind": kind},
            "resource": {"group": group, "version": "v1", "resource": resource},
            "requestKind": {"group": group, "version": "v1", "kind": kind},
            "requestResource": {"group": group, "version": "v1", "resource": resource},
            "name": object["metadata"]["name"],
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]},
            "object": object,
            "oldObject": null,
            "dryRun": false,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}
        }
    }))
    .unwrap()
}

pub fn nad_review(uid: &str, object: Value) -> Vec<u8> {
    review(
        uid,
        "k8s.cni.cncf.io",
        "NetworkAttachmentDefinition",
        "network-attachment-definitions",
        "team",
        object,
    )
}

pub fn pod_review(uid: &str, namespace: &str, object: Value) -> Vec<u8> {
    review(uid, "", "Pod", "pods", namespace, object)
}
