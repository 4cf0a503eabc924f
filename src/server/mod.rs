//! The HTTP service: axum router, shared state, handlers and the mapping
//! of outcomes to status codes. Handlers parse, call the domain module
//! (`keystore`) and map the result; every status code is chosen in
//! [`error::ApiError`]. This module never prints.

mod auth;
mod error;
mod key_check;
mod rate_limit;
mod state;

pub use auth::{client_ip, parse_bearer};
pub use error::ApiError;
pub use state::{AppState, ServerConfig};

use axum::Router;
use axum::routing::get;
use std::future::Future;
use std::net::SocketAddr;
use tokio::net::TcpListener;

/// All routes of `keywarden serve`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/key", get(key_check::key_info))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(state)
}

/// Serves `router(state)` on `listener` until `shutdown` completes, then
/// finishes the requests in flight.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    state.start_housekeeping();
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
