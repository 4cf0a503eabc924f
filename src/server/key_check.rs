//! `GET /api/v1/key`: OpenRouter's key-info endpoint. Answers whether the
//! bearer key works, in OpenRouter's response shape plus our `type`,
//! `expires_at` and `scopes`.

use super::{ApiError, AppState, auth};
use crate::keystore::{KeyHash, KeyRecord, KeyState, looks_like_key};
use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use serde_json::{Value, json};
use std::net::SocketAddr;
use time::OffsetDateTime;

/// Checks, in order: the caller's address against the key's allowlist
/// (403), the key itself (401 for every kind of bad key), the key type's
/// rate limit (429). Every request reads the store, so a revocation is
/// visible to the very next one.
pub async fn key_info(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
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
    let ip = auth::forwarded_client(peer.ip(), &headers, &state.inner.config.trusted_proxies);
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
        .map_err(|retry_after_secs| ApiError::RateLimited { retry_after_secs })?;
    state.touch(&record.id);
    Ok(Json(key_body(&record)))
}

fn key_body(r: &KeyRecord) -> Value {
    json!({
        "data": {
            "label": r.label,
            "name": r.name,
            "limit": r.credit_limit,
            "usage": r.usage,
            "limit_remaining": r.limit_remaining(),
            "is_free_tier": false,
            "is_provisioning_key": false,
            "rate_limit": { "requests": r.key_type.requests_per_minute(), "interval": "1m" },
            "expires_at": r.expires_at.map(crate::keystore::rfc3339),
            "type": r.key_type,
            "scopes": r.scopes,
            "can_invoke_models": r.key_type.can_invoke_models(),
            "team": r.team,
        }
    })
}
