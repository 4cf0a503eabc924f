//! `GET /api/v1/key`: OpenRouter's key-info endpoint. Answers whether the
//! bearer key works, in OpenRouter's response shape (see [`key_view`])
//! plus keywarden's own fields. The same checks admit callers of the
//! management API.
//!
//! [`key_view`]: super::key_view

use super::{ApiError, AppState, auth, key_view};
use crate::keystore::{KeyHash, KeyRecord, KeyState, looks_like_key};
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::http::header::{self, AUTHORIZATION};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use time::OffsetDateTime;

pub async fn key_info(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (record, now) = authenticate(&state, peer, &headers).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        key_view::current_key(&record, now),
    )
        .into_response())
}

/// The key that calls, if it may be used now. Checks, in order: the
/// caller's address against the key's allowlist (403), the key itself
/// (401 for every kind of bad key: unknown, revoked, expired, disabled),
/// the key type's rate limit (429). Every request reads the store, so a
/// revocation is visible to the very next one.
pub(super) async fn authenticate(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> Result<(KeyRecord, OffsetDateTime), ApiError> {
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|h| auth::parse_bearer(h.as_bytes()))
        .filter(|t| looks_like_key(t))
        .ok_or(ApiError::Unauthorized)?;
    let record = state
        .store_call({
            let hash = KeyHash::of(token);
            move |store| async move { store.find_by_hash(&hash).await }
        })
        .await?
        .ok_or(ApiError::Unauthorized)?;
    let ip = auth::forwarded_client(peer.ip(), headers, &state.inner.config.trusted_proxies);
    // An unreadable chain from a proxy leaves the client unknown: a key
    // with an allowlist is refused rather than judged by the proxy's address.
    let allowed = match ip {
        Some(ip) => record.allows_ip(ip),
        None => record.allowed_ips.is_empty(),
    };
    if !allowed {
        return Err(ApiError::IpNotAllowed);
    }
    let now = OffsetDateTime::now_utc();
    if record.state(now) != KeyState::Active {
        return Err(ApiError::Unauthorized);
    }
    state
        .inner
        .limits
        .check(record.key_type, &record.id)
        .await
        .map_err(|retry_after_secs| ApiError::RateLimited { retry_after_secs })?;
    state.touch(&record.id);
    Ok((record, now))
}
