//! `POST {partner path}`: GitHub's secret-scanning reports. What is cheap
//! to refuse is refused first: the signature headers are read and the key
//! they name is found before a byte of the body is read, and the body is
//! read under a size limit, a deadline and the budget all bodies share.
//! Nothing in the body is parsed or looked up before the signature over
//! the raw bytes holds.

use super::body::BodyRefused;
use super::{ApiError, AppState};
use crate::keystore::LeakOutcome;
use crate::partner::{
    self, KEY_ID_HEADER, Lookup, PublicKeyEntry, RefreshOutcome, SIGNATURE_HEADER, SignatureError,
    TokenLabel,
};
use crate::untrusted::one_line;
use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, header};
use std::net::SocketAddr;
use time::OffsetDateTime;

/// The largest body accepted; GitHub's batches are far smaller.
pub const BODY_LIMIT: usize = 1 << 20;

pub async fn github_report(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Vec<TokenLabel>>, ApiError> {
    let request_id = request_id(&headers);
    let inner = &state.inner;
    let refuse = |reason: &'static str, e: SignatureError| {
        inner.metrics.signature_failure(reason);
        tracing::warn!(request_id, reason, "partner report refused");
        e
    };
    let signed = partner::read_signature_headers(
        headers.get(KEY_ID_HEADER).map(|v| v.as_bytes()),
        headers.get(SIGNATURE_HEADER).map(|v| v.as_bytes()),
    )
    .map_err(|e| {
        let reason = match e {
            SignatureError::MissingHeader(_) => "missing_header",
            _ => "bad_encoding",
        };
        refuse(reason, e)
    })?;
    let (key_id, der) = (signed.key_id, signed.der);
    let key = public_key(&state, key_id, &request_id).await?;
    let body = read_body(&state, peer, &headers, body, &request_id).await?;
    let body = &body.bytes[..];
    partner::verify_signature(&key, &der, body).map_err(|e| refuse("bad_signature", e))?;
    let key_id_short = one_line(key_id, 16);
    if !key.is_current {
        inner.metrics.noncurrent_key_uses.inc();
        tracing::info!(
            request_id,
            key_id = ?key_id_short,
            "report signed with a non-current GitHub key"
        );
    }

    let tokens = partner::parse_report(body).map_err(|e| {
        tracing::warn!(request_id, error = %e, "partner report body refused");
        ApiError::Unprocessable(e.to_string())
    })?;
    let answers = state
        .store_call({
            let request_id = request_id.clone();
            move |store| async move {
                partner::respond_to_report(
                    &*store,
                    &tokens,
                    Some(&request_id),
                    OffsetDateTime::now_utc(),
                )
                .await
            }
        })
        .await
        .map_err(|e| {
            tracing::error!(request_id, error = %e, "partner report answered 503 (GitHub will retry)");
            ApiError::from(e)
        })?;
    let mut revoked = 0;
    let mut seen_again = 0;
    for (label, outcome) in &answers {
        inner.metrics.token(&label.label);
        let hash = &label.token_hash[..12];
        match outcome {
            LeakOutcome::Revoked { key_id } => {
                revoked += 1;
                inner.metrics.revocations.inc();
                tracing::info!(
                    request_id,
                    token_hash = hash,
                    key = key_id,
                    "key revoked: reported by GitHub"
                );
            }
            LeakOutcome::AlreadyRevoked { key_id } => {
                seen_again += 1;
                tracing::info!(
                    request_id,
                    token_hash = hash,
                    key = key_id,
                    "revoked key reported again"
                );
            }
            LeakOutcome::Unknown => {}
        }
    }
    tracing::info!(
        request_id,
        github_key_id = ?key_id_short,
        tokens = answers.len(),
        revoked,
        seen_again,
        "partner report processed"
    );
    Ok(Json(answers.into_iter().map(|(label, _)| label).collect()))
}

/// The report's body, read under its limits; each refusal is counted and
/// logged.
async fn read_body(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: Body,
    request_id: &str,
) -> Result<super::body::ReadBody, ApiError> {
    let inner = &state.inner;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    // An unreadable chain from a proxy counts against the proxy itself.
    let client = super::auth::forwarded_client(peer.ip(), headers, &inner.config.trusted_proxies)
        .unwrap_or(peer.ip());
    let read = inner
        .body_budget
        .read(
            body,
            Some(client),
            declared,
            BODY_LIMIT,
            inner.config.body_timeout,
        )
        .await;
    read.map_err(|refused| {
        let reason = match refused {
            BodyRefused::TooLarge { .. } => "too_large",
            BodyRefused::OverBudget => "over_budget",
            BodyRefused::TimedOut(_) => "timed_out",
            BodyRefused::Broken => "broken",
        };
        inner.metrics.partner_body_refused(reason);
        tracing::warn!(request_id, reason, "partner report body not read");
        ApiError::from(refused)
    })
}

/// The GitHub key named `key_id`: from the cache, or after one refresh.
async fn public_key(
    state: &AppState,
    key_id: &str,
    request_id: &str,
) -> Result<PublicKeyEntry, ApiError> {
    let inner = &state.inner;
    for attempt in 0..2 {
        match inner.github_keys.lookup(key_id) {
            Lookup::Found(key) => return Ok(key),
            Lookup::NotLoaded(reason) => {
                tracing::warn!(
                    request_id,
                    reason,
                    "partner report before GitHub's keys are loaded"
                );
                return Err(ApiError::KeysUnavailable);
            }
            Lookup::Unknown if attempt == 0 => {
                match inner.github_keys.refresh_for_unknown().await {
                    RefreshOutcome::Refreshed => inner.metrics.key_refresh("ok"),
                    RefreshOutcome::Failed(e) => {
                        inner.metrics.key_refresh("error");
                        tracing::warn!(request_id, error = e, "refreshing GitHub's keys failed");
                    }
                    RefreshOutcome::RefreshedByOther | RefreshOutcome::TooSoon => {}
                }
            }
            Lookup::Unknown => {}
        }
    }
    inner.metrics.signature_failure("unknown_key");
    tracing::warn!(
        request_id,
        github_key_id = ?one_line(key_id, 16),
        "unknown GitHub key identifier"
    );
    Err(SignatureError::UnknownKey.into())
}

/// The caller's request id (`X-GitHub-Request-Id`, `X-Request-Id`) or a
/// fresh one.
pub fn request_id(headers: &HeaderMap) -> String {
    ["x-github-request-id", "x-request-id"]
        .iter()
        .find_map(|name| headers.get(*name)?.to_str().ok())
        .map(|v| {
            v.chars()
                .filter(|c| c.is_ascii_graphic())
                .take(64)
                .collect()
        })
        .filter(|v: &String| !v.is_empty())
        .unwrap_or_else(|| {
            let mut bytes = [0u8; 8];
            let _ = getrandom::fill(&mut bytes);
            hex::encode(bytes)
        })
}
