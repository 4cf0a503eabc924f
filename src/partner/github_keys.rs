//! GitHub's secret-scanning public keys: fetched from
//! `GET {api}/meta/public_keys/secret_scanning` with octocrab (or read from a
//! file), cached, and refreshed when an unknown identifier arrives — at
//! most once per interval, with one fetch in flight however many requests
//! wait. A failed fetch never replaces a good key set.

use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::DecodePublicKey;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::RwLock;
use std::time::{Duration, Instant};
use thiserror::Error;

/// Why a key set could not be loaded.
#[derive(Debug, Error, Clone)]
pub enum KeysError {
    #[error("cannot fetch GitHub's public keys: {0}")]
    Fetch(String),
    #[error("cannot read {path}: {reason}")]
    File { path: String, reason: String },
    #[error("GitHub's public-key list is malformed: {0}")]
    Malformed(String),
}

/// One trusted GitHub key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKeyEntry {
    /// The uncompressed SEC1 point, as ring verifies with it.
    pub point: Vec<u8>,
    /// False for a rotated-out key that GitHub still lists.
    pub is_current: bool,
}

impl PublicKeyEntry {
    /// Parses a SubjectPublicKeyInfo PEM holding a P-256 key.
    pub fn from_pem(pem: &str, is_current: bool) -> Result<Self, KeysError> {
        let key = p256::PublicKey::from_public_key_pem(pem)
            .map_err(|e| KeysError::Malformed(format!("not a P-256 public key: {e}")))?;
        let point = key.to_encoded_point(false);
        Ok(PublicKeyEntry {
            point: point.as_bytes().to_vec(),
            is_current,
        })
    }
}

#[derive(Deserialize)]
struct KeyList {
    public_keys: Vec<ListedKey>,
}

#[derive(Deserialize)]
struct ListedKey {
    key_identifier: String,
    key: String,
    #[serde(default = "yes")]
    is_current: bool,
}

fn yes() -> bool {
    true
}

/// Parses the JSON GitHub's endpoint returns (also the `--github-keys-file`
/// format).
pub fn parse_key_list(json: &[u8]) -> Result<HashMap<String, PublicKeyEntry>, KeysError> {
    let list: KeyList =
        serde_json::from_slice(json).map_err(|e| KeysError::Malformed(e.to_string()))?;
    let mut keys = HashMap::new();
    for k in list.public_keys {
        keys.insert(
            k.key_identifier,
            PublicKeyEntry::from_pem(&k.key, k.is_current)?,
        );
    }
    if keys.is_empty() {
        return Err(KeysError::Malformed("no keys listed".into()));
    }
    Ok(keys)
}

/// Longest cause of a failed fetch kept for logs and `/readyz`, in
/// characters.
const CAUSE_CHARS: usize = 300;

/// Why octocrab failed, in words, without ever formatting the
/// `octocrab::Error` itself: its `Display` and `Debug` print the backtrace
/// it captured, and symbolizing that reads the binary's debug information
/// and keeps it resident (13 MB became 142 MB on the first failed fetch,
/// and each failure cost the CPU again). Only what it wraps is shown:
/// GitHub's status and message, the HTTP client's and the OS's errors
/// ("connection refused", a DNS failure, a timeout).
fn octocrab_cause(e: &octocrab::Error) -> String {
    let mut words: Vec<String> = Vec::new();
    let mut link: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(error) = link {
        link = error.source();
        let text = match error.downcast_ref::<octocrab::Error>() {
            Some(octocrab::Error::GitHub { source, .. }) => {
                // The message only: GitHub's documentation URL and error
                // list are noise in a log line.
                words.push(format!(
                    "GitHub answered {}: {}",
                    source.status_code, source.message
                ));
                break;
            }
            Some(inner) => match octocrab_context(inner) {
                Some(context) => context.to_string(),
                None => continue,
            },
            None => error.to_string(),
        };
        // Some errors repeat their cause in their own message.
        if !words.iter().any(|w| w.contains(&text)) {
            words.push(text);
        }
    }
    if words.is_empty() {
        words.push("the GitHub client failed without saying why".into());
    }
    crate::untrusted::one_line(&words.join(": "), CAUSE_CHARS)
}

/// What an octocrab error adds to its cause, when its cause does not say it.
fn octocrab_context(e: &octocrab::Error) -> Option<&'static str> {
    use octocrab::Error as E;
    match e {
        E::Uri { .. } | E::UriParse { .. } => Some("bad URL"),
        E::InvalidHeaderValue { .. } => Some("bad header value"),
        E::InvalidUtf8 { .. } => Some("the answer is not UTF-8"),
        E::Serde { .. } | E::Json { .. } => Some("unreadable JSON"),
        E::Installation { .. } | E::InstallationTokenInvalidAuth { .. } => {
            Some("the client is not a GitHub App installation")
        }
        // The transport's own errors (hyper, the connector, the timeout
        // layer) say what failed.
        _ => None,
    }
}

fn fetch_error(e: octocrab::Error) -> KeysError {
    KeysError::Fetch(octocrab_cause(&e))
}

/// Where the keys come from.
pub enum KeySource {
    /// GitHub's API (or a GitHub Enterprise / test server at that base URL).
    Github(Box<octocrab::Octocrab>),
    /// A file holding the same JSON (air-gapped deployments, rehearsals).
    File(PathBuf),
}

impl KeySource {
    /// A client for `api_base` (e.g. `https://api.github.com`), with an
    /// optional token against GitHub's rate limits.
    pub fn github(api_base: &str, token: Option<String>) -> Result<Self, KeysError> {
        let mut builder = octocrab::Octocrab::builder()
            .base_uri(api_base)
            .map_err(|e| {
                KeysError::Fetch(format!(
                    "bad GitHub API URL {}: {}",
                    crate::untrusted::one_line(api_base, CAUSE_CHARS),
                    octocrab_cause(&e)
                ))
            })?
            .set_connect_timeout(Some(Duration::from_secs(5)))
            .set_read_timeout(Some(Duration::from_secs(10)));
        if let Some(token) = token {
            builder = builder.personal_token(token);
        }
        let client = builder.build().map_err(fetch_error)?;
        Ok(KeySource::Github(Box::new(client)))
    }

    async fn fetch(&self) -> Result<HashMap<String, PublicKeyEntry>, KeysError> {
        match self {
            KeySource::Github(client) => {
                let response = client
                    ._get("/meta/public_keys/secret_scanning")
                    .await
                    .map_err(fetch_error)?;
                let status = response.status();
                let body = client.body_to_string(response).await.map_err(fetch_error)?;
                if !status.is_success() {
                    return Err(KeysError::Fetch(format!("GitHub answered {status}")));
                }
                parse_key_list(body.as_bytes())
            }
            KeySource::File(path) => {
                let bytes = tokio::fs::read(path).await.map_err(|e| KeysError::File {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?;
                parse_key_list(&bytes)
            }
        }
    }
}

/// The result of looking a key identifier up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Found(PublicKeyEntry),
    Unknown,
    /// No key set was ever loaded; the reason of the last failure.
    NotLoaded(String),
}

/// What an on-demand refresh did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// This call fetched a new key set.
    Refreshed,
    /// Another request refreshed while this one waited: look again.
    RefreshedByOther,
    /// A refresh happened too recently; nothing was fetched.
    TooSoon,
    /// The fetch failed; the previous key set stays.
    Failed(String),
}

struct Cache {
    keys: Option<HashMap<String, PublicKeyEntry>>,
    last_error: Option<String>,
    last_on_demand: Option<Instant>,
    generation: u64,
}

/// The cached key set and its refresh policy.
pub struct GithubKeys {
    source: KeySource,
    min_refresh_interval: Duration,
    cache: RwLock<Cache>,
    refreshing: tokio::sync::Mutex<()>,
}

impl GithubKeys {
    pub fn new(source: KeySource, min_refresh_interval: Duration) -> Self {
        GithubKeys {
            source,
            min_refresh_interval,
            cache: RwLock::new(Cache {
                keys: None,
                last_error: Some("GitHub's public keys are not loaded yet".into()),
                last_on_demand: None,
                generation: 0,
            }),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Cache> {
        self.cache.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Cache> {
        self.cache.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Fetches and installs the key set (start-up and background retries).
    /// Returns how many keys are trusted.
    pub async fn load(&self) -> Result<usize, KeysError> {
        let _guard = self.refreshing.lock().await;
        self.fetch_and_install().await
    }

    async fn fetch_and_install(&self) -> Result<usize, KeysError> {
        match self.source.fetch().await {
            Ok(keys) => {
                let n = keys.len();
                let mut cache = self.write();
                cache.keys = Some(keys);
                cache.last_error = None;
                cache.generation += 1;
                Ok(n)
            }
            Err(e) => {
                self.write().last_error = Some(e.to_string());
                Err(e)
            }
        }
    }

    pub fn is_loaded(&self) -> bool {
        self.read().keys.is_some()
    }

    /// Trusted key count, or why none are loaded (for `/readyz`).
    pub fn readiness(&self) -> Result<usize, String> {
        let cache = self.read();
        match &cache.keys {
            Some(keys) => Ok(keys.len()),
            None => Err(cache.last_error.clone().unwrap_or_default()),
        }
    }

    pub fn lookup(&self, key_id: &str) -> Lookup {
        let cache = self.read();
        match &cache.keys {
            None => Lookup::NotLoaded(cache.last_error.clone().unwrap_or_default()),
            Some(keys) => keys
                .get(key_id)
                .cloned()
                .map_or(Lookup::Unknown, Lookup::Found),
        }
    }

    /// Refreshes because an unknown identifier arrived: at most once per
    /// interval, one fetch however many callers wait.
    pub async fn refresh_for_unknown(&self) -> RefreshOutcome {
        let seen = self.read().generation;
        let _guard = self.refreshing.lock().await;
        {
            let mut cache = self.write();
            if cache.generation != seen {
                return RefreshOutcome::RefreshedByOther;
            }
            if cache
                .last_on_demand
                .is_some_and(|at| at.elapsed() < self.min_refresh_interval)
            {
                return RefreshOutcome::TooSoon;
            }
            cache.last_on_demand = Some(Instant::now());
        }
        match self.fetch_and_install().await {
            Ok(_) => RefreshOutcome::Refreshed,
            Err(e) => RefreshOutcome::Failed(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service_error(cause: std::io::Error) -> octocrab::Error {
        octocrab::Error::Service {
            source: Box::new(cause),
            backtrace: std::backtrace::Backtrace::disabled(),
        }
    }

    #[test]
    fn a_failed_fetch_says_its_cause_in_words() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let text = fetch_error(service_error(refused)).to_string();
        assert_eq!(
            text,
            "cannot fetch GitHub's public keys: connection refused"
        );
    }

    #[test]
    fn a_cause_from_the_network_is_one_escaped_line() {
        let hostile = std::io::Error::other("evil\n2024-01-01 INFO forged line\u{1b}[31m");
        let text = octocrab_cause(&service_error(hostile));
        assert!(!text.contains('\n') && !text.contains('\u{1b}'), "{text}");
        assert!(text.starts_with("evil\\n"), "{text}");
    }
}
