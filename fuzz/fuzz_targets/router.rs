//! The whole public router, in process through `tower::ServiceExt::oneshot`:
//! any method, any of its paths, any header bytes (the partner signature
//! headers, Authorization, X-Forwarded-For, lengths…) and any body, with
//! every log line enabled (tracing evaluates a field only when its line is
//! on, and a key identifier was once sliced inside a character there).
//!
//! Checks: nothing panics, and every status is one the service documents.
#![no_main]

use arbitrary::Arbitrary;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderName, HeaderValue, Method, Request};
use keywarden::partner::{GithubKeys, KeySource, public_key_pem, sign_body};
use keywarden::server::{AppState, ServerConfig};
use libfuzzer_sys::fuzz_target;
use p256::ecdsa::SigningKey;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tower::ServiceExt;

const PATHS: [&str; 5] = [
    "/github/secret-scanning",
    "/api/v1/key",
    "/healthz",
    "/metrics",
    "/nothing",
];
const METHODS: [Method; 4] = [Method::GET, Method::POST, Method::PUT, Method::OPTIONS];
const HEADERS: [&str; 9] = [
    "github-public-key-identifier",
    "github-public-key-signature",
    "authorization",
    "x-forwarded-for",
    "x-request-id",
    "x-github-request-id",
    "content-type",
    "content-length",
    "transfer-encoding",
];

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    method: u8,
    path: u8,
    headers: Vec<(u8, &'a [u8])>,
    /// Add a real signature of the body by the trusted key.
    sign_it: bool,
    body: &'a [u8],
}

struct World {
    runtime: tokio::runtime::Runtime,
    state: AppState,
    signing: SigningKey,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(std::io::sink)
            .try_init();
        // A fixed scalar: a test key, never a real one.
        let signing = SigningKey::from_slice(&[7u8; 32]).expect("valid scalar");
        let dir =
            std::env::temp_dir().join(format!("keywarden-fuzz-router-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let keys = dir.join("github-keys.json");
        let list = serde_json::json!({"public_keys": [{
            "key_identifier": "fuzz-key", "key": public_key_pem(&signing), "is_current": true
        }]});
        std::fs::write(&keys, list.to_string()).expect("keys file");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let url = format!("sqlite://{}", dir.join("k.db").display());
        let state = runtime.block_on(async {
            let store = keywarden::keystore::open_store(&url).await.expect("store");
            let github = Arc::new(GithubKeys::new(
                KeySource::File(keys),
                Duration::from_secs(3600),
            ));
            github.load().await.expect("keys load");
            AppState::new(store, github, ServerConfig::default())
        });
        World {
            runtime,
            state,
            signing,
        }
    })
}

fuzz_target!(|input: Input<'_>| {
    let w = world();
    let mut builder = Request::builder()
        .method(METHODS[input.method as usize % METHODS.len()].clone())
        .uri(PATHS[input.path as usize % PATHS.len()]);
    for (name, value) in input.headers.iter().take(8) {
        // Bytes no HTTP parser hands over (CR, LF, NUL) cannot arrive.
        if let Ok(value) = HeaderValue::from_bytes(value) {
            let name = HeaderName::from_static(HEADERS[*name as usize % HEADERS.len()]);
            builder = builder.header(name, value);
        }
    }
    if input.sign_it {
        builder = builder.header(
            "github-public-key-signature",
            sign_body(&w.signing, input.body),
        );
    }
    let mut request = builder
        .body(Body::from(input.body.to_vec()))
        .expect("request");
    request.extensions_mut().insert(ConnectInfo(
        "203.0.113.7:5555".parse::<SocketAddr>().expect("addr"),
    ));
    let router = keywarden::server::router(w.state.clone());
    let response = w
        .runtime
        .block_on(router.oneshot(request))
        .expect("infallible");
    let status = response.status().as_u16();
    assert!(
        [200, 400, 401, 403, 404, 405, 408, 413, 415, 422, 429, 503].contains(&status),
        "undocumented status {status}"
    );
});
