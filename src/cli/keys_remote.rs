//! `keywarden keys … --server URL`: the key lifecycle through a running
//! server's management API (`/api/v1/keys`), with the management key in
//! `KEYWARDEN_MANAGEMENT_KEY`, so that operators of a replicated
//! deployment never need the database's credentials.

use anyhow::{Context, bail};
use keywarden::untrusted::one_line;
use serde_json::{Value, json};
use std::io::Write;

/// The environment variable that holds the management key.
pub const MANAGEMENT_KEY_ENV: &str = "KEYWARDEN_MANAGEMENT_KEY";

/// Keys a page of the management API holds.
const PAGE_SIZE: usize = 100;
/// The most keys `list` reads from a server before it stops with an error
/// (a server that never ends its pages cannot hold the CLI forever, nor
/// fill its memory: about 150 MB of key objects at most).
const MAX_LISTED: usize = 100_000;

/// A server's management API and the key to call it with.
pub struct Remote {
    api: String,
    shown: String,
    key: keywarden::secret::Secret,
    agent: ureq::Agent,
}

impl Remote {
    /// The API of the server at `base` (e.g. `https://keys.example.com`).
    pub fn new(base: &str) -> anyhow::Result<Remote> {
        let shown = one_line(&keywarden::keystore::redact_url(base), 100);
        let Some((_, rest)) = base
            .split_once("://")
            .filter(|(scheme, _)| *scheme == "https" || *scheme == "http")
        else {
            bail!("--server \"{shown}\" is not an http(s) URL");
        };
        // The management key goes to exactly this server's API: no user
        // part, query or fragment that would move it elsewhere.
        if rest.contains(['@', '?', '#']) || rest.is_empty() {
            bail!(
                "--server \"{shown}\" must be a plain http(s)://host[:port][/path] URL, without a user, query or fragment"
            );
        }
        let key = std::env::var(MANAGEMENT_KEY_ENV).unwrap_or_default();
        let key = keywarden::secret::Secret::new(key.trim());
        if key.expose().is_empty() {
            bail!(
                "--server needs a management key: set {MANAGEMENT_KEY_ENV} (make one with `keywarden keys create --management` on the database)"
            );
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(30)))
            .max_redirects(0)
            .user_agent(concat!("keywarden/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let base = base.trim_end_matches('/');
        Ok(Remote {
            api: format!("{base}/api/v1"),
            shown,
            key,
            agent,
        })
    }

    /// `METHOD /api/v1{path}` with an optional JSON body; the answer's JSON
    /// on success, the server's error message otherwise.
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.api);
        let auth = format!("Bearer {}", String::from_utf8_lossy(self.key.expose()));
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("Authorization", auth)
            .header("Content-Type", "application/json")
            .body(body.map(Value::to_string).unwrap_or_default())
            .context("cannot build the request")?;
        let mut response = self
            .agent
            .run(request)
            .with_context(|| format!("cannot reach the server at {}", self.shown))?;
        let status = response.status();
        let text = response
            .body_mut()
            .with_config()
            .limit(16 << 20)
            .read_to_string()
            .with_context(|| format!("cannot read the answer of {}", self.shown))?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if !status.is_success() {
            let message = value["error"]["message"]
                .as_str()
                .map(|m| one_line(m, 300))
                .unwrap_or_else(|| "no message".into());
            bail!(
                "the server at {} answered {} to {method} {path}: {message}",
                self.shown,
                status.as_u16()
            );
        }
        if value.is_null() {
            bail!("the server at {} answered with no JSON", self.shown);
        }
        Ok(value)
    }

    /// The key object under `data` of an answer, checked to be one.
    fn key_object(&self, answer: &Value) -> anyhow::Result<Value> {
        let data = answer.get("data").cloned().unwrap_or_default();
        match data.get("id").and_then(Value::as_str) {
            Some(id) if key_path(id).is_ok() => Ok(data),
            _ => bail!("the server at {} did not answer with a key", self.shown),
        }
    }

    /// The new key of an answer, checked to be an OpenRouter key.
    fn new_key(&self, answer: &Value) -> anyhow::Result<String> {
        match answer.get("key").and_then(Value::as_str) {
            Some(key) if keywarden::keystore::looks_like_key(key.as_bytes()) => Ok(key.into()),
            _ => bail!("the server at {} did not answer with a new key", self.shown),
        }
    }

    pub fn create(&self, body: &Value) -> anyhow::Result<Value> {
        let made = self.call("POST", "/keys", Some(body))?;
        Ok(json!({ "key": self.new_key(&made)?, "record": self.key_object(&made)? }))
    }

    /// Every key, disabled and expired ones too, newest first.
    pub fn list(&self) -> anyhow::Result<Vec<Value>> {
        let mut all = Vec::new();
        loop {
            let path = format!(
                "/keys?include_disabled=true&include_expired=true&offset={}",
                all.len()
            );
            let page = self.call("GET", &path, None)?;
            let Some(keys) = page.get("data").and_then(Value::as_array) else {
                bail!(
                    "the server at {} did not answer with a list of keys",
                    self.shown
                );
            };
            let last = keys.len() < PAGE_SIZE;
            all.extend(keys.iter().cloned());
            if last {
                return Ok(all);
            }
            if all.len() >= MAX_LISTED {
                bail!(
                    "the server at {} listed more than {MAX_LISTED} keys; stopped",
                    self.shown
                );
            }
        }
    }

    /// `id`: a key id, or a key hash.
    pub fn show(&self, id: &str) -> anyhow::Result<Value> {
        self.key_object(&self.call("GET", &key_path(id)?, None)?)
    }

    pub fn set_disabled(&self, id: &str, disabled: bool) -> anyhow::Result<Value> {
        let body = json!({ "disabled": disabled });
        self.key_object(&self.call("PATCH", &key_path(id)?, Some(&body))?)
    }

    pub fn rotate(&self, id: &str, grace_seconds: i64) -> anyhow::Result<Value> {
        let body = json!({ "grace_seconds": grace_seconds });
        let made = self.call("POST", &format!("{}/rotate", key_path(id)?), Some(&body))?;
        Ok(json!({
            "key": self.new_key(&made)?,
            "record": self.key_object(&made)?,
            "old_id": made.get("old_id"),
            "old_revoked_at": made.get("old_revoked_at"),
        }))
    }

    pub fn revoke(&self, id: &str, reason: &str) -> anyhow::Result<Value> {
        let body = json!({ "reason": reason });
        let done = self.call("POST", &format!("{}/revoke", key_path(id)?), Some(&body))?;
        let outcome = match done.get("outcome").and_then(Value::as_str) {
            Some(o @ ("revoked" | "already_revoked")) => o.to_string(),
            _ => bail!(
                "the server at {} did not say whether it revoked the key",
                self.shown
            ),
        };
        Ok(json!({ "outcome": outcome, "record": self.key_object(&done)? }))
    }
}

/// The API path of a key named by id or hash; anything else is refused
/// here rather than sent into a URL.
fn key_path(id: &str) -> anyhow::Result<String> {
    if !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        Ok(format!("/keys/{id}"))
    } else {
        bail!("{:?} is not a key id (key_…) or hash", one_line(id, 80))
    }
}

/// A field of a key object as one line of text, escaped, `-` when absent
/// or null.
pub fn field(key: &Value, name: &str) -> String {
    match key.get(name) {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => one_line(s, 300),
        Some(other) => one_line(&other.to_string(), 300),
    }
}

/// `keys list` as a table, from the API's key objects.
pub fn print_table(keys: &[Value]) -> anyhow::Result<()> {
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|k| {
            [
                "id",
                "name",
                "owner_email",
                "type",
                "label",
                "state",
                "expires_at",
            ]
            .iter()
            .map(|name| field(k, name))
            .collect()
        })
        .collect();
    let header = ["ID", "NAME", "OWNER", "TYPE", "LABEL", "STATE", "EXPIRES"];
    super::output::write_table(&mut std::io::stdout().lock(), &header, &rows)?;
    Ok(())
}

/// `keys show` as `name value` lines, from the API's key object.
pub fn print_details(key: &Value) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if let Some(fields) = key.as_object() {
        for name in fields.keys() {
            writeln!(out, "{:<22}{}", one_line(name, 40), field(key, name))?;
        }
    }
    Ok(())
}
