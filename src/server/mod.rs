//! The HTTP service: axum router, shared state, handlers and the mapping
//! of outcomes to status codes. Handlers parse, call the domain modules
//! (`keystore`, `partner`) and map the result; every status code is chosen
//! in [`error::ApiError`]. This module never prints; it logs with
//! `tracing`, never a token or key.

mod alerts;
mod auth;
mod body;
mod error;
mod key_check;
mod key_view;
mod listener;
mod management;
mod metrics;
mod partner_route;
mod rate_limit;
mod state;
mod tls;
mod usage_log;

pub use alerts::AlertConfig;
pub use auth::{client_ip, parse_bearer};
pub use error::ApiError;
pub use listener::{
    ConnectionLimits, DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_REQUEST_TIMEOUT,
    default_max_connections,
};
pub use partner_route::BODY_LIMIT;
pub use rate_limit::RateLimitMode;
pub use state::{
    AppState, DEFAULT_BODY_TIMEOUT, DEFAULT_PARTNER_BODY_BUDGET, DEFAULT_PARTNER_PATH,
    DEFAULT_STORE_TIMEOUT, ServerConfig,
};
pub use tls::{TlsError, TlsMinVersion, TlsSetup};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The public routes of `keywarden serve`: the key check, the partner
/// endpoint and `/healthz`.
pub fn router(state: AppState) -> Router {
    let partner_path = state.inner.config.partner_path.clone();
    Router::new()
        .route("/api/v1/key", get(key_check::key_info))
        .route(
            "/api/v1/keys",
            get(management::list).post(management::create),
        )
        .route(
            "/api/v1/keys/{hash}",
            get(management::get)
                .patch(management::update)
                .delete(management::delete),
        )
        .route("/api/v1/keys/{hash}/rotate", post(management::rotate))
        .route("/api/v1/keys/{hash}/revoke", post(management::revoke))
        .route(&partner_path, post(partner_route::github_report))
        .route("/healthz", get(healthz))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .with_state(state)
}

/// The operator's routes, on the admin listener: `/metrics`, `/readyz`
/// (which says what is missing) and `/healthz`.
pub fn admin_router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Counts every answer by route and status.
async fn count_requests(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_string();
    let response = next.run(request).await;
    state
        .inner
        .metrics
        .request(&route, response.status().as_u16());
    response
}

/// 200 when the store answers and GitHub's keys are loaded; 503 saying
/// what is missing otherwise.
async fn readyz(State(state): State<AppState>) -> Response {
    let store = state
        .store_call(|store| async move { store.ping().await })
        .await
        .map_err(|e| e.to_string());
    let keys = state.inner.github_keys.readiness();
    let body = serde_json::json!({
        "store": match &store { Ok(()) => "ok".to_string(), Err(e) => e.clone() },
        "github_keys": match &keys { Ok(n) => format!("{n} loaded"), Err(e) => e.clone() },
    });
    let status = if store.is_ok() && keys.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    let inner = &state.inner;
    // A store that does not answer leaves the outbox gauges as they were;
    // both are asked at once, so a stall costs one store timeout.
    let (depth, counts) = tokio::join!(
        state.store_call(|store| async move { store.outbox_depth().await }),
        state.store_call(|store| async move { store.outbox_counts().await }),
    );
    if let Ok(depth) = depth {
        inner.metrics.outbox_depth.set(depth);
    }
    if let Ok(counts) = counts {
        inner.metrics.outbox_states(&counts);
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        inner.metrics.render(),
    )
        .into_response()
}

/// Where and how `keywarden serve` listens.
pub struct Listeners {
    /// The public listener: key check, partner endpoint, `/healthz`.
    pub public: TcpListener,
    /// HTTPS on the public listener when set.
    pub tls: Option<Arc<TlsSetup>>,
    pub limits: ConnectionLimits,
    /// `/metrics` and `/readyz`, when set.
    pub admin: Option<TcpListener>,
}

/// Connections the admin listener keeps open at most.
const ADMIN_MAX_CONNECTIONS: usize = 64;

/// Serves until `shutdown` completes, then finishes the requests in flight.
pub async fn serve(
    listeners: Listeners,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    state.start_housekeeping();
    state.start_key_loading();
    let (stop, stopped) = watch::channel(false);
    if let Some(tls) = &listeners.tls {
        start_tls_reloading(tls.cert.clone(), state.clone(), stopped.clone());
    }
    let public = listener::Listener {
        name: "public",
        tcp: listeners.public,
        router: router(state.clone()),
        tls: listeners.tls,
        limits: listeners.limits.clone(),
    };
    let admin = listeners.admin.map(|tcp| listener::Listener {
        name: "admin",
        tcp,
        router: admin_router(state.clone()),
        tls: None,
        limits: ConnectionLimits {
            max_connections: ADMIN_MAX_CONNECTIONS,
            ..listeners.limits
        },
    });
    let public = tokio::spawn(public.run(state.clone(), stopped.clone()));
    let admin = admin.map(|admin| tokio::spawn(admin.run(state.clone(), stopped)));
    shutdown.await;
    let _ = stop.send(true);
    let _ = public.await;
    if let Some(admin) = admin {
        let _ = admin.await;
    }
    // The last requests' usage records, before the process ends.
    match state.inner.usage.flush(USAGE_FLUSH_LIMIT).await {
        Some(n) => tracing::info!(records = n, "usage records written before stopping"),
        None => tracing::warn!(
            limit_s = USAGE_FLUSH_LIMIT.as_secs(),
            "usage records still queued at the stop were not all written in time; the rest are lost"
        ),
    }
    Ok(())
}

/// How long a stopping server waits for its queued usage records.
const USAGE_FLUSH_LIMIT: std::time::Duration = std::time::Duration::from_secs(15);

/// Reloads the certificate on SIGHUP and when its files change; a reload
/// that fails keeps the certificate in use and logs why.
fn start_tls_reloading(
    cert: Arc<tls::ReloadingCert>,
    state: AppState,
    mut stopped: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        #[cfg(unix)]
        let mut hangup =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut poll = tokio::time::interval(tls::RELOAD_POLL);
        poll.tick().await;
        loop {
            #[cfg(unix)]
            let signalled = async {
                match hangup.as_mut() {
                    Some(h) => {
                        h.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let signalled = std::future::pending::<()>();
            let why = tokio::select! {
                _ = stopped.wait_for(|stop| *stop) => return,
                _ = signalled => "SIGHUP",
                _ = poll.tick() => {
                    if !cert.files_changed() {
                        continue;
                    }
                    "the files changed"
                }
            };
            match cert.reload() {
                Ok(()) => {
                    state.inner.metrics.tls_reload("ok");
                    tracing::info!(files = %cert.describe(), trigger = why, "TLS certificate reloaded");
                }
                Err(e) => {
                    state.inner.metrics.tls_reload("error");
                    tracing::error!(
                        error = %e,
                        trigger = why,
                        "TLS certificate not reloaded; the one in use stays"
                    );
                }
            }
        }
    });
}
