//! The whole public router under arbitrary requests, in process through
//! `tower::ServiceExt::oneshot`: any header bytes, any body, any method,
//! on every route. Nothing may panic, and every answer is one the service
//! documents. The pure parsers have their own cargo-fuzz targets; this
//! catches what only the handlers do with their results (a key identifier
//! once was sliced on a byte index after it had been read).

mod common;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderName, HeaderValue, Method, Request};
use common::github::{Signer, key_list};
use keywarden::partner::{GithubKeys, KeySource};
use keywarden::server::{AppState, ServerConfig};
use proptest::prelude::*;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

struct World {
    runtime: tokio::runtime::Runtime,
    state: AppState,
    signer: Signer,
    _dir: tempfile::TempDir,
}

fn world() -> World {
    // Every log line enabled, written nowhere: tracing evaluates a field
    // only when its line is enabled, and the service logs at info.
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(std::io::sink)
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let signer = Signer::new();
    let keys = dir.path().join("github-keys.json");
    std::fs::write(&keys, key_list(&[signer.listed(true)]).to_string()).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let url = format!("sqlite://{}", dir.path().join("k.db").display());
    let state = runtime.block_on(async {
        let store = keywarden::keystore::open_store(&url).await.unwrap();
        let github = Arc::new(GithubKeys::new(
            KeySource::File(keys),
            Duration::from_secs(3600),
        ));
        github.load().await.unwrap();
        AppState::new(store, github, ServerConfig::default())
    });
    World {
        runtime,
        state,
        signer,
        _dir: dir,
    }
}

#[derive(Debug, Clone)]
enum Sig {
    /// Whatever bytes.
    Raw(Vec<u8>),
    /// A real signature over the body, from the trusted key.
    Valid,
    /// A well-formed signature over something else.
    Other,
}

fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..80),
        "\\PC{0,40}".prop_map(String::into_bytes),
        Just(b"abcdefghijk\xc3\xa9xyz".to_vec()),
    ]
}

fn body_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        "\\PC{0,200}".prop_map(String::into_bytes),
        ("\\PC{0,80}", "\\PC{0,40}", "\\PC{0,40}", "\\PC{0,20}").prop_map(|(t, ty, url, src)| {
            serde_json::json!([{"token": t, "type": ty, "url": url, "source": src}])
                .to_string()
                .into_bytes()
        }),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    method: Method,
    path: &'static str,
    key_id: Option<Vec<u8>>,
    signature: Option<Sig>,
    extra: Vec<(&'static str, Vec<u8>)>,
    body: Vec<u8>,
}

fn case() -> impl Strategy<Value = Case> {
    let method = prop_oneof![
        Just(Method::GET),
        Just(Method::POST),
        Just(Method::PUT),
        Just(Method::DELETE),
        Just(Method::OPTIONS),
    ];
    let path = prop_oneof![
        Just("/github/secret-scanning"),
        Just("/api/v1/key"),
        Just("/healthz"),
        Just("/metrics"),
        Just("/nothing/here"),
    ];
    let sig = prop_oneof![
        header_bytes().prop_map(Sig::Raw),
        Just(Sig::Valid),
        Just(Sig::Other),
    ];
    let extra_name = prop_oneof![
        Just("authorization"),
        Just("x-forwarded-for"),
        Just("x-request-id"),
        Just("x-github-request-id"),
        Just("content-type"),
        Just("content-length"),
        Just("transfer-encoding"),
        Just("expect"),
    ];
    (
        method,
        path,
        proptest::option::weighted(0.9, header_bytes()),
        proptest::option::weighted(0.9, sig),
        proptest::collection::vec((extra_name, header_bytes()), 0..4),
        body_bytes(),
    )
        .prop_map(|(method, path, key_id, signature, extra, body)| Case {
            method,
            path,
            key_id,
            signature,
            extra,
            body,
        })
}

fn request(case: &Case, signer: &Signer) -> Request<Body> {
    let mut builder = Request::builder()
        .method(case.method.clone())
        .uri(case.path);
    let mut push = |name: &str, value: &[u8]| {
        // Bytes no HTTP parser would hand over (CR, LF, NUL) are not a
        // request the server can receive.
        if let Ok(value) = HeaderValue::from_bytes(value) {
            builder = std::mem::take(&mut builder)
                .header(HeaderName::from_bytes(name.as_bytes()).unwrap(), value);
        }
    };
    if let Some(id) = &case.key_id {
        push("github-public-key-identifier", id);
    }
    match &case.signature {
        Some(Sig::Raw(bytes)) => push("github-public-key-signature", bytes),
        Some(Sig::Valid) => push(
            "github-public-key-signature",
            signer.sign(&case.body).as_bytes(),
        ),
        Some(Sig::Other) => push(
            "github-public-key-signature",
            signer.sign(b"another body").as_bytes(),
        ),
        None => {}
    }
    for (name, value) in &case.extra {
        push(name, value);
    }
    let mut request = builder.body(Body::from(case.body.clone())).unwrap();
    request.extensions_mut().insert(ConnectInfo(
        "203.0.113.7:5555".parse::<SocketAddr>().unwrap(),
    ));
    request
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn no_request_panics_the_router_or_gets_an_undocumented_answer(case in case()) {
        thread_local! { static WORLD: World = world(); }
        WORLD.with(|w| {
            let router = keywarden::server::router(w.state.clone());
            let request = request(&case, &w.signer);
            let response = w.runtime.block_on(router.oneshot(request)).unwrap();
            let status = response.status().as_u16();
            prop_assert!(
                [200, 400, 401, 403, 404, 405, 408, 413, 415, 422, 429, 503].contains(&status),
                "status {} for {:?}", status, case
            );
            Ok(())
        })?;
    }
}
