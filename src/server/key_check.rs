//! `GET /api/v1/key`: OpenRouter's key-info endpoint. Answers whether the
//! bearer key works, in OpenRouter's response shape (see [`key_view`])
//! plus keywarden's own fields. The same checks admit callers of the
//! management API.
//!
//! [`key_view`]: super::key_view

use super::{ApiError, AppState, auth, key_view};
use crate::keystore::{KeyHash, KeyRecord, KeyState, UsageOutcome, UsageRecord, looks_like_key};
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::http::header::{self, AUTHORIZATION, USER_AGENT};
use axum::response::{IntoResponse, Response};
use std::net::{IpAddr, SocketAddr};
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
/// revocation is visible to the very next one. Every check of a token
/// shaped like a key goes to the usage log, whatever its outcome.
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
    let hash = KeyHash::of(token);
    let found = state
        .store_call(move |store| async move { store.find_by_hash(&hash).await })
        .await?;
    let ip = auth::forwarded_client(peer.ip(), headers, &state.inner.config.trusted_proxies);
    let now = OffsetDateTime::now_utc();
    let revoked_at = found.as_ref().and_then(|r| r.revoked_at);
    let (outcome, result) = judge(state, found, ip, now).await;
    if let (UsageOutcome::Revoked, Some(revoked_at), Err((Some(id), _))) =
        (outcome, revoked_at, &result)
    {
        state.revoked_key_tried(id, revoked_at, now);
    }
    if state.inner.usage.is_on() {
        state.inner.usage.record(
            UsageRecord {
                key_id: result
                    .as_ref()
                    .map_or_else(|(id, _)| id.clone(), |r| Some(r.id.clone())),
                unknown_hash: (outcome == UsageOutcome::Unknown).then(|| KeyHash::of(token)),
                at: now,
                ip,
                outcome,
                user_agent: headers
                    .get(USER_AGENT)
                    .map(|ua| UsageRecord::user_agent_of(ua.as_bytes())),
            },
            &state.inner.metrics.usage,
        );
    }
    match result {
        Ok(record) => {
            state.touch(&record.id);
            Ok((record, now))
        }
        Err((_, e)) => Err(e),
    }
}

/// What a found (or not found) key's check comes to; a refusal carries
/// the key's id for the usage log.
async fn judge(
    state: &AppState,
    found: Option<KeyRecord>,
    ip: Option<IpAddr>,
    now: OffsetDateTime,
) -> (UsageOutcome, Result<KeyRecord, (Option<String>, ApiError)>) {
    let Some(record) = found else {
        return (UsageOutcome::Unknown, Err((None, ApiError::Unauthorized)));
    };
    // An unreadable chain from a proxy leaves the client unknown: a key
    // with an allowlist is refused rather than judged by the proxy's address.
    let allowed = match ip {
        Some(ip) => record.allows_ip(ip),
        None => record.allowed_ips.is_empty(),
    };
    let refuse = |outcome, e| (outcome, Err((Some(record.id.clone()), e)));
    if !allowed {
        return refuse(UsageOutcome::IpRefused, ApiError::IpNotAllowed);
    }
    let outcome = match record.state(now) {
        KeyState::Active => UsageOutcome::Ok,
        KeyState::Revoked => UsageOutcome::Revoked,
        KeyState::Expired => UsageOutcome::Expired,
        KeyState::Disabled => UsageOutcome::Disabled,
    };
    if outcome != UsageOutcome::Ok {
        return refuse(outcome, ApiError::Unauthorized);
    }
    if let Err(retry_after_secs) = state.inner.limits.check(record.key_type, &record.id).await {
        return refuse(
            UsageOutcome::RateLimited,
            ApiError::RateLimited { retry_after_secs },
        );
    }
    (UsageOutcome::Ok, Ok(record))
}
