//! The HTTP service: axum router, shared state, handlers and the mapping
//! of outcomes to status codes. Handlers parse, call the domain modules
//! (`keystore`, `partner`) and map the result; every status code is chosen
//! in [`error::ApiError`]. This module never prints; it logs with
//! `tracing`, never a token or key.

mod auth;
mod error;
mod key_check;
mod metrics;
mod partner_route;
mod rate_limit;
mod state;

pub use auth::{client_ip, parse_bearer};
pub use error::ApiError;
pub use partner_route::BODY_LIMIT;
pub use state::{AppState, DEFAULT_PARTNER_PATH, DEFAULT_STORE_TIMEOUT, ServerConfig};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::future::Future;
use std::net::SocketAddr;
use tokio::net::TcpListener;

/// All routes of `keywarden serve`.
pub fn router(state: AppState) -> Router {
    let partner_path = state.inner.config.partner_path.clone();
    Router::new()
        .route("/api/v1/key", get(key_check::key_info))
        .route(
            &partner_path,
            post(partner_route::github_report).layer(DefaultBodyLimit::max(BODY_LIMIT)),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .with_state(state)
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

/// Serves `router(state)` on `listener` until `shutdown` completes, then
/// finishes the requests in flight.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    state.start_housekeeping();
    state.start_key_loading();
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
