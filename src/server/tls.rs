//! HTTPS for `keywarden serve`: rustls with the certificate and key read
//! from PEM files, TLS 1.3 only unless 1.2 is allowed, HTTP/2 and
//! HTTP/1.1 by ALPN. The certificate is swapped in place on SIGHUP and
//! when the files change: handshakes after the swap get the new one, open
//! connections keep theirs, and a reload that fails keeps the old
//! certificate and says why.

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};
use thiserror::Error;

/// The largest certificate or key file read.
const MAX_PEM_BYTES: u64 = 1 << 20;
/// How often the files are looked at for changes.
pub const RELOAD_POLL: Duration = Duration::from_secs(5);

/// A certificate or key that cannot be used.
#[derive(Debug, Error)]
pub enum TlsError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: String },
    #[error("{path} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoKey { path: String },
    #[error("the key in {key} cannot be used: {reason}")]
    BadKey { key: String, reason: String },
    #[error("the key in {key} does not belong to the certificate in {cert}")]
    Mismatch { cert: String, key: String },
    #[error("cannot set up TLS: {0}")]
    Config(String),
}

/// The lowest TLS version a client may speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMinVersion {
    Tls12,
    Tls13,
}

impl std::str::FromStr for TlsMinVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "1.2" => Ok(TlsMinVersion::Tls12),
            "1.3" => Ok(TlsMinVersion::Tls13),
            other => Err(format!(
                "{other:?} is not a TLS version keywarden speaks (1.2 or 1.3)"
            )),
        }
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_pem(path: &Path) -> Result<Vec<u8>, TlsError> {
    use std::io::Read;
    let err = |reason: String| TlsError::Read {
        path: path.display().to_string(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| err(e.to_string()))?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(err(format!("larger than {MAX_PEM_BYTES} bytes")));
    }
    Ok(bytes)
}

/// Reads a certificate chain and its private key, and checks they belong
/// together.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let cert_name = cert.display().to_string();
    let key_name = key.display().to_string();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read_pem(cert)?)
        .filter_map(Result::ok)
        .collect();
    if chain.is_empty() {
        return Err(TlsError::NoCertificate { path: cert_name });
    }
    let private = PrivateKeyDer::from_pem_slice(&read_pem(key)?).map_err(|_| TlsError::NoKey {
        path: key_name.clone(),
    })?;
    CertifiedKey::from_der(chain, private, &provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => TlsError::Mismatch {
            cert: cert_name,
            key: key_name,
        },
        other => TlsError::BadKey {
            key: key_name,
            reason: other.to_string(),
        },
    })
}

/// What identifies a file's version cheaply.
fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

type Stamps = (Option<(SystemTime, u64)>, Option<(SystemTime, u64)>);

/// The certificate in use, swapped on reload.
#[derive(Debug)]
pub struct ReloadingCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    stamps: std::sync::Mutex<Stamps>,
}

impl ReloadingCert {
    fn stamps(&self) -> Stamps {
        (stamp(&self.cert_path), stamp(&self.key_path))
    }

    /// Loads the files again; on failure the old certificate stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let stamps = self.stamps();
        let loaded = load_certified_key(&self.cert_path, &self.key_path);
        // A failed version is not tried again until the files change.
        *self.stamps.lock().unwrap_or_else(|e| e.into_inner()) = stamps;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(loaded?);
        Ok(())
    }

    /// Whether either file changed since it was last loaded.
    pub fn files_changed(&self) -> bool {
        *self.stamps.lock().unwrap_or_else(|e| e.into_inner()) != self.stamps()
    }

    pub fn describe(&self) -> String {
        format!("{} / {}", self.cert_path.display(), self.key_path.display())
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

/// Everything a TLS listener needs.
pub struct TlsSetup {
    acceptor: tokio_rustls::TlsAcceptor,
    pub cert: Arc<ReloadingCert>,
}

impl TlsSetup {
    /// Loads the certificate and key (a bad pair stops the start) and
    /// builds the server configuration.
    pub fn new(cert: &Path, key: &Path, min: TlsMinVersion) -> Result<Self, TlsError> {
        let loaded = load_certified_key(cert, key)?;
        let resolver = Arc::new(ReloadingCert {
            cert_path: cert.to_path_buf(),
            key_path: key.to_path_buf(),
            current: RwLock::new(Arc::new(loaded)),
            stamps: std::sync::Mutex::new((stamp(cert), stamp(key))),
        });
        let versions: &[&'static rustls::SupportedProtocolVersion] = match min {
            TlsMinVersion::Tls13 => &[&rustls::version::TLS13],
            TlsMinVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        };
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsSetup {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            cert: resolver,
        })
    }

    pub fn acceptor(&self) -> &tokio_rustls::TlsAcceptor {
        &self.acceptor
    }
}
