//! The serving certificate: read from PEM files, and replaced when their content changes, so a
//! rotated Secret (cert-manager, a CSR renewal) takes effect without a restart. Handshakes in
//! flight keep the certificate they started with; the next handshake gets the new one.

use std::collections::hash_map::DefaultHasher;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::error::WebhookError;

/// Where the PEM certificate chain and private key are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, WebhookError> {
    std::fs::read(path).map_err(|e| WebhookError::tls(path, e.to_string()))
}

/// Builds the certified key from the PEM contents of the two files.
fn certified_key(files: &CertFiles, cert: &[u8], key: &[u8]) -> Result<CertifiedKey, WebhookError> {
    let chain = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| WebhookError::tls(&files.cert, format!("not a PEM certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(WebhookError::tls(&files.cert, "holds no certificate"));
    }
    let key = PrivateKeyDer::from_pem_slice(key)
        .map_err(|e| WebhookError::tls(&files.key, format!("not a PEM private key: {e}")))?;
    CertifiedKey::from_der(chain, key, &provider())
        .map_err(|e| WebhookError::tls(&files.key, format!("does not fit the certificate: {e}")))
}

fn fingerprint(cert: &[u8], key: &[u8]) -> u64 {
    // Change detection only: the files are trusted, so a fast non-cryptographic hash will do.
    let mut hasher = DefaultHasher::new();
    cert.hash(&mut hasher);
    key.hash(&mut hasher);
    hasher.finish()
}

/// The certificate every handshake is served, swapped when the files change.
pub struct ReloadingCert {
    files: CertFiles,
    current: RwLock<Arc<CertifiedKey>>,
    /// Hash of the file contents last tried, loaded or not: a broken pair is reported once.
    last_seen: Mutex<u64>,
}

impl fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadingCert")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl ReloadingCert {
    /// Loads the pair; the process cannot serve without it.
    pub fn load(files: CertFiles) -> Result<Arc<Self>, WebhookError> {
        let cert = read(&files.cert)?;
        let key = read(&files.key)?;
        let loaded = certified_key(&files, &cert, &key)?;
        Ok(Arc::new(Self {
            last_seen: Mutex::new(fingerprint(&cert, &key)),
            current: RwLock::new(Arc::new(loaded)),
            files,
        }))
    }

    /// Reads the files again; when their content changed and forms a valid pair, later handshakes
    /// get it. `Ok(true)` when a new certificate was installed. On error the old one stays.
    pub fn reload_if_changed(&self) -> Result<bool, WebhookError> {
        let cert = read(&self.files.cert)?;
        let key = read(&self.files.key)?;
        let seen = fingerprint(&cert, &key);
        {
            let mut last_seen = self.last_seen.lock().unwrap_or_else(|p| p.into_inner());
            if *last_seen == seen {
                return Ok(false);
            }
            *last_seen = seen;
        }
        let loaded = certified_key(&self.files, &cert, &key)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(loaded);
        Ok(true)
    }

    /// The certificate chain served now, leaf first.
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .cert
            .clone()
    }

    /// A rustls server config (TLS 1.2 and 1.3, HTTP/1.1) serving this certificate.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, WebhookError> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// Polls the files every `interval` until `stop` fires, logging each change or failure.
    pub async fn watch(
        self: Arc<Self>,
        interval: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stop.changed() => return,
            }
            match self.reload_if_changed() {
                Ok(true) => {
                    tracing::info!(cert = %self.files.cert.display(), "serving certificate reloaded")
                }
                Ok(false) => {}
                Err(e) => tracing::warn!("keeping the current serving certificate: {e}"),
            }
        }
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}
