//! GitHub's side of the partner protocol, run locally: a GitHub-API-shaped
//! public-keys endpoint (axum on 127.0.0.1:0) and P-256 signers that sign
//! reports as GitHub does.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use keywarden::partner::{public_key_pem, sign_body};
use p256::ecdsa::SigningKey;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A GitHub key pair with its identifier.
#[derive(Clone)]
pub struct Signer {
    pub key: SigningKey,
    pub id: String,
}

impl Signer {
    pub fn new() -> Signer {
        let key = SigningKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
        let id = keywarden::secret::sha256_hex(public_key_pem(&key).as_bytes());
        Signer { key, id }
    }

    pub fn sign(&self, body: &[u8]) -> String {
        sign_body(&self.key, body)
    }

    /// This key as GitHub lists it.
    pub fn listed(&self, is_current: bool) -> Value {
        json!({ "key_identifier": self.id, "key": public_key_pem(&self.key), "is_current": is_current })
    }
}

/// The public-keys JSON GitHub's endpoint (and `--github-keys-file`) holds.
pub fn key_list(keys: &[Value]) -> Value {
    json!({ "public_keys": keys })
}

#[derive(Clone, Default)]
struct Shared {
    keys: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
    failing: Arc<AtomicBool>,
    authorization: Arc<Mutex<Vec<Option<String>>>>,
}

/// `GET /meta/public_keys/secret_scanning`, counting fetches; it can be
/// made to fail (500) and its key list changed while it runs.
pub struct FakeGithub {
    pub base: String,
    shared: Shared,
}

async fn public_keys(State(s): State<Shared>, headers: HeaderMap) -> impl IntoResponse {
    s.fetches.fetch_add(1, Ordering::SeqCst);
    s.authorization.lock().unwrap().push(
        headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_string()),
    );
    if s.failing.load(Ordering::SeqCst) {
        return (StatusCode::INTERNAL_SERVER_ERROR, "{}".to_string());
    }
    let keys = s.keys.lock().unwrap().clone();
    (StatusCode::OK, key_list(&keys).to_string())
}

impl FakeGithub {
    pub fn start(keys: Vec<Value>) -> FakeGithub {
        let shared = Shared::default();
        *shared.keys.lock().unwrap() = keys;
        let app = axum::Router::new()
            .route("/meta/public_keys/secret_scanning", get(public_keys))
            .with_state(shared.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
        });
        FakeGithub { base, shared }
    }

    pub fn set_keys(&self, keys: Vec<Value>) {
        *self.shared.keys.lock().unwrap() = keys;
    }

    pub fn set_failing(&self, failing: bool) {
        self.shared.failing.store(failing, Ordering::SeqCst);
    }

    pub fn fetches(&self) -> usize {
        self.shared.fetches.load(Ordering::SeqCst)
    }

    pub fn authorization_seen(&self) -> Vec<Option<String>> {
        self.shared.authorization.lock().unwrap().clone()
    }
}

/// A `keywarden serve` on `database_url` trusting `signer` through a keys
/// file (kept in the returned directory), with `extra` flags.
pub fn serve_trusting(
    database_url: &str,
    signer: &Signer,
    extra: &[&str],
) -> (super::server::Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("github-keys.json");
    std::fs::write(&file, key_list(&[signer.listed(true)]).to_string()).unwrap();
    let mut args = vec!["--github-keys-file", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    (super::server::Server::start(database_url, &args), dir)
}

/// GitHub's report body for `tokens`, each found in a commit.
pub fn report(tokens: &[&str]) -> Vec<u8> {
    let items: Vec<Value> = tokens
        .iter()
        .map(|t| {
            serde_json::json!({"token": t, "type": "openrouter_api_key",
                   "url": "https://github.com/acme/app/blob/abc123/.env", "source": "commit"})
        })
        .collect();
    serde_json::to_vec(&items).unwrap()
}

/// Posts `body` to the partner endpoint, signed by `signer`.
pub fn send(server: &super::server::Server, signer: &Signer, body: &[u8]) -> super::server::Reply {
    super::server::post(
        &server.url("/github/secret-scanning"),
        &[
            ("Content-Type", "application/json"),
            ("Github-Public-Key-Identifier", &signer.id),
            ("Github-Public-Key-Signature", &signer.sign(body)),
        ],
        body,
    )
}
