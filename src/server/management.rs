//! OpenRouter's key-management API, `/api/v1/keys`, for management keys
//! only: list (newest first, 100 a page), create, get, update (rename,
//! disable and enable, limits) and delete keys, by the SHA-256 hash the
//! store keeps (or keywarden's key id). Two routes are keywarden's own:
//! `POST /api/v1/keys/{hash}/rotate` and `…/revoke`, so that operators of
//! a replicated deployment never need the database to manage keys.
//!
//! Bodies are bounded and read strictly (an unknown field is refused and
//! named); anything quoted back from a request is escaped.

use super::key_check::authenticate;
use super::{ApiError, AppState, key_view};
use crate::keystore::{
    self, KeyHash, KeyRecord, KeySpec, KeyType, KeyUpdate, LimitReset, PageFilter, Revocation,
    UpdateOutcome,
};
use crate::untrusted::one_line;
use axum::Json;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::net::SocketAddr;
use time::OffsetDateTime;

/// Keys a page of `GET /api/v1/keys` holds, as OpenRouter pages them.
pub const PAGE_SIZE: u64 = 100;
/// The largest `offset` taken.
const MAX_OFFSET: u64 = 10_000_000;
/// The largest management request body, in bytes.
const MAX_BODY: usize = 64 * 1024;

/// The calling key, if it may use the management API: a working key
/// (else 401, as the key check) that is a management key (else 403).
async fn admin(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> Result<(KeyRecord, OffsetDateTime), ApiError> {
    let (record, now) = authenticate(state, peer, headers).await?;
    if !record.management {
        return Err(ApiError::NotManagementKey);
    }
    Ok((record, now))
}

fn bad(message: String) -> ApiError {
    ApiError::BadRequest(message)
}

/// Reads a JSON body of at most [`MAX_BODY`] bytes; an empty body is
/// `{}` where `empty_ok`.
async fn read_json<T: DeserializeOwned>(body: Body, empty_ok: bool) -> Result<T, ApiError> {
    let bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|e| {
        let too_large =
            std::iter::successors(Some(&e as &(dyn std::error::Error + 'static)), |e| {
                e.source()
            })
            .any(|e| e.is::<http_body_util::LengthLimitError>());
        if too_large {
            ApiError::PayloadTooLarge { limit: MAX_BODY }
        } else {
            ApiError::BodyBroken
        }
    })?;
    let bytes: &[u8] = if bytes.trim_ascii().is_empty() && empty_ok {
        b"{}"
    } else {
        &bytes
    };
    let not_taken = |e: serde_json::Error| {
        bad(format!(
            "the request body is not what this endpoint takes: {}",
            one_line(&e.to_string(), 400)
        ))
    };
    // An object, never an array read field by field in order.
    let value: Value = serde_json::from_slice(bytes).map_err(not_taken)?;
    if !value.is_object() {
        return Err(bad("the request body must be a JSON object".into()));
    }
    serde_json::from_value(value).map_err(not_taken)
}

/// Longest grace period a rotation through the API may give the old key.
const MAX_GRACE_SECONDS: u32 = 7 * 24 * 3600;

/// [`find_key`] for a change: the API never changes a management key,
/// since one management key could otherwise rotate, disable or delete
/// another (or mint itself a successor that outlives its own revocation).
async fn find_key_to_change(
    state: &AppState,
    path: Result<Path<String>, PathRejection>,
) -> Result<KeyRecord, ApiError> {
    let record = find_key(state, path).await?;
    if record.management {
        return Err(ApiError::ManagementKeyTarget);
    }
    Ok(record)
}

/// `Some(value)` for a field that is present, even as `null`: tells
/// "remove the limit" from "leave it".
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

fn limit_reset(text: Option<&str>) -> Result<Option<LimitReset>, ApiError> {
    text.map(|t| {
        t.parse()
            .map_err(|e: keystore::SpecError| bad(e.to_string()))
    })
    .transpose()
}

/// An `expires_at` as OpenRouter takes it: RFC 3339 with seconds, in UTC.
fn parse_expiry(text: &str) -> Result<OffsetDateTime, ApiError> {
    let shown = one_line(text, 60);
    let at = OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|_| {
            bad(format!(
                "expires_at \"{shown}\" is not an RFC 3339 time with seconds, like 2027-01-31T00:00:00Z"
            ))
        })?;
    if !at.offset().is_utc() {
        return Err(bad(format!(
            "expires_at \"{shown}\" is not in UTC: give the time with Z (e.g. 2027-01-31T00:00:00Z)"
        )));
    }
    Ok(at)
}

/// The query of `GET /api/v1/keys`.
#[derive(Debug, Default, PartialEq)]
struct ListQuery {
    offset: u64,
    include_disabled: bool,
    include_expired: bool,
}

fn parse_list_query(raw: Option<&str>) -> Result<ListQuery, ApiError> {
    let mut query = ListQuery::default();
    let flag = |name: &str, value: &str| match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(bad(format!(
            "{name} must be true or false, not \"{}\"",
            one_line(value, 40)
        ))),
    };
    for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
        let value = percent_encoding::percent_decode_str(value).decode_utf8_lossy();
        match name.as_ref() {
            "offset" => {
                query.offset = value
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n <= MAX_OFFSET)
                    .ok_or_else(|| {
                        bad(format!(
                            "offset must be a whole number from 0 to {MAX_OFFSET}, not \"{}\"",
                            one_line(&value, 40)
                        ))
                    })?;
            }
            "include_disabled" => query.include_disabled = flag(&name, &value)?,
            "include_expired" => query.include_expired = flag(&name, &value)?,
            other => {
                return Err(bad(format!(
                    "unknown query parameter \"{}\" (offset, include_disabled, include_expired)",
                    one_line(other, 40)
                )));
            }
        }
    }
    Ok(query)
}

/// The key a path names, by hash (64 hex digits) or keywarden's id; 404
/// for a key that is not there or was deleted.
async fn find_key(
    state: &AppState,
    path: Result<Path<String>, PathRejection>,
) -> Result<KeyRecord, ApiError> {
    let Path(name) = path.map_err(|_| bad("the key in the path cannot be read".into()))?;
    let record = if let Some(hash) = KeyHash::from_hex(&name) {
        state
            .store_call(move |store| async move { store.find_by_hash(&hash).await })
            .await?
    } else if name.starts_with("key_")
        && name.len() <= 40
        && name[4..].bytes().all(|b| b.is_ascii_alphanumeric())
    {
        state
            .store_call(move |store| async move { store.get(&name).await })
            .await?
    } else {
        return Err(bad(format!(
            "\"{}\" is neither a key hash (64 hex digits) nor a key id (key_…)",
            one_line(&name, 80)
        )));
    };
    record
        .filter(|r| r.deleted_at.is_none())
        .ok_or(ApiError::NotFound)
}

/// `GET /api/v1/keys`.
pub async fn list(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let (_, now) = admin(&state, peer, &headers).await?;
    let query = parse_list_query(raw.as_deref())?;
    let filter = PageFilter {
        include_disabled: query.include_disabled,
        include_expired: query.include_expired,
        offset: query.offset,
        limit: PAGE_SIZE,
    };
    let keys = state
        .store_call(move |store| async move { store.page(&filter, now).await })
        .await?;
    let data: Vec<Value> = keys.iter().map(|k| key_view::managed_key(k, now)).collect();
    Ok(Json(json!({ "data": data })))
}

/// What `POST /api/v1/keys` takes: OpenRouter's fields, then keywarden's.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    #[serde(default)]
    limit: Option<f64>,
    #[serde(default)]
    limit_reset: Option<String>,
    #[serde(default)]
    expires_at: Option<String>,
    #[serde(default)]
    include_byok_in_limit: Option<bool>,
    #[serde(default)]
    creator_user_id: Option<String>,
    #[serde(default)]
    workspace_id: Option<String>,
    #[serde(default, rename = "type")]
    key_type: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    team: Option<String>,
    #[serde(default)]
    allowed_ips: Vec<String>,
    #[serde(default)]
    owner_email: Option<String>,
}

impl CreateBody {
    /// The key to make; the owner is the management key's unless named.
    fn into_spec(self, admin: &KeyRecord) -> Result<KeySpec, ApiError> {
        for (field, value) in [
            ("creator_user_id", &self.creator_user_id),
            ("workspace_id", &self.workspace_id),
            ("team", &self.team),
            ("owner_email", &self.owner_email),
        ] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return Err(bad(format!("{field} must not be empty")));
            }
        }
        let team = match (self.team, self.workspace_id) {
            (Some(t), Some(w)) if t != w => {
                return Err(bad("team and workspace_id name different teams".into()));
            }
            (t, w) => t.or(w),
        };
        let owner_id = match (&self.creator_user_id, &self.owner_email) {
            (Some(id), _) => id.clone(),
            (None, Some(email)) => email.clone(),
            (None, None) => admin.owner_id.clone(),
        };
        Ok(KeySpec {
            name: self.name,
            owner_id,
            owner_email: self
                .owner_email
                .unwrap_or_else(|| admin.owner_email.clone()),
            team,
            key_type: match self.key_type.as_deref() {
                None => KeyType::Standard,
                Some(t) => t
                    .parse()
                    .map_err(|e: keystore::SpecError| bad(e.to_string()))?,
            },
            scopes: self.scopes,
            credit_limit: self.limit,
            expires_at: self.expires_at.as_deref().map(parse_expiry).transpose()?,
            allowed_ips: self
                .allowed_ips
                .iter()
                .map(|ip| keystore::parse_cidr(ip).map_err(|e| bad(one_line(&e, 200))))
                .collect::<Result<_, _>>()?,
            management: false,
            limit_reset: limit_reset(self.limit_reset.as_deref())?,
            include_byok_in_limit: self.include_byok_in_limit.unwrap_or(false),
        })
    }
}

/// `POST /api/v1/keys`: 201 with the new key, shown this once.
pub async fn create(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (admin, now) = admin(&state, peer, &headers).await?;
    let spec = read_json::<CreateBody>(body, false)
        .await?
        .into_spec(&admin)?;
    let (key, record) = state
        .store_call(move |store| async move { keystore::create_key(&*store, spec, now).await })
        .await?;
    tracing::info!(admin = %admin.id, key = %record.id, "key created through the management API");
    let key = String::from_utf8_lossy(key.expose()).into_owned();
    Ok((
        StatusCode::CREATED,
        Json(json!({ "key": key, "data": key_view::managed_key(&record, now) })),
    ))
}

/// `GET /api/v1/keys/{hash}`.
pub async fn get(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let (_, now) = admin(&state, peer, &headers).await?;
    let record = find_key(&state, path).await?;
    Ok(Json(json!({ "data": key_view::managed_key(&record, now) })))
}

/// What `PATCH /api/v1/keys/{hash}` takes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    disabled: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    limit: Option<Option<f64>>,
    #[serde(default, deserialize_with = "present")]
    limit_reset: Option<Option<String>>,
    #[serde(default)]
    include_byok_in_limit: Option<bool>,
}

/// `PATCH /api/v1/keys/{hash}`: one statement, so a revocation that
/// races it wins; turning a revoked key on again is 409.
pub async fn update(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let (admin, now) = admin(&state, peer, &headers).await?;
    let patch = read_json::<PatchBody>(body, false).await?;
    let update = KeyUpdate {
        name: patch.name,
        disabled: patch.disabled,
        credit_limit: patch.limit,
        limit_reset: match patch.limit_reset {
            Some(text) => Some(limit_reset(text.as_deref())?),
            None => None,
        },
        include_byok_in_limit: patch.include_byok_in_limit,
    };
    update.validate().map_err(|e| bad(e.to_string()))?;
    let record = find_key_to_change(&state, path).await?;
    let by = format!("api:{}", admin.id);
    let id = record.id.clone();
    let outcome = state
        .store_call(move |store| async move { store.update(&id, &update, &by, now).await })
        .await?;
    match outcome {
        UpdateOutcome::Updated(record) => {
            tracing::info!(admin = %admin.id, key = %record.id, state = %record.state(now), "key updated through the management API");
            Ok(Json(json!({ "data": key_view::managed_key(&record, now) })))
        }
        UpdateOutcome::NotFound => Err(ApiError::NotFound),
        UpdateOutcome::Revoked(record) => Err(ApiError::Conflict(revoked_message(&record))),
    }
}

/// Why a revoked key cannot be turned on again.
fn revoked_message(record: &KeyRecord) -> String {
    format!(
        "This key was revoked ({}) and can never be re-enabled; create a new key instead",
        one_line(
            record
                .revocation_reason
                .as_deref()
                .unwrap_or("no reason given"),
            120
        )
    )
}

/// `DELETE /api/v1/keys/{hash}`: the key is revoked and gone from the API.
pub async fn delete(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let (admin, now) = admin(&state, peer, &headers).await?;
    let record = find_key_to_change(&state, path).await?;
    let reason = format!("deleted through the management API by {}", admin.id);
    let id = record.id.clone();
    let deleted = state
        .store_call(move |store| async move { store.delete(&id, &reason, now).await })
        .await?;
    if !deleted {
        return Err(ApiError::NotFound);
    }
    tracing::info!(admin = %admin.id, key = %record.id, "key deleted through the management API");
    Ok(Json(json!({ "deleted": true })))
}

/// What keywarden's `POST /api/v1/keys/{hash}/rotate` takes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    /// Keep the old key working this many seconds.
    #[serde(default)]
    grace_seconds: u32,
}

/// keywarden's `POST /api/v1/keys/{hash}/rotate`: a new key with the same
/// settings (201, shown once); the old one is revoked now or after the
/// grace period.
pub async fn rotate(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (admin, now) = admin(&state, peer, &headers).await?;
    let grace_seconds = read_json::<RotateBody>(body, true).await?.grace_seconds;
    if grace_seconds > MAX_GRACE_SECONDS {
        return Err(bad(format!(
            "grace_seconds may be at most {MAX_GRACE_SECONDS} (7 days), not {grace_seconds}"
        )));
    }
    let grace = time::Duration::seconds(i64::from(grace_seconds));
    let record = find_key_to_change(&state, path).await?;
    let id = record.id.clone();
    let rotation = state
        .store_call(
            move |store| async move { keystore::rotate_key(&*store, &id, grace, now).await },
        )
        .await?;
    tracing::info!(admin = %admin.id, old = %rotation.old_id, new = %rotation.new.id, "key rotated through the management API");
    let key = String::from_utf8_lossy(rotation.key.expose()).into_owned();
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "key": key,
            "data": key_view::managed_key(&rotation.new, now),
            "old_id": rotation.old_id,
            "old_revoked_at": keystore::rfc3339(rotation.old_revoked_at),
        })),
    ))
}

/// What keywarden's `POST /api/v1/keys/{hash}/revoke` takes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    #[serde(default)]
    reason: Option<String>,
}

/// keywarden's `POST /api/v1/keys/{hash}/revoke`: the key stops working
/// for good and stays listed (with `include_disabled`).
pub async fn revoke(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let (admin, now) = admin(&state, peer, &headers).await?;
    let reason = read_json::<RevokeBody>(body, true)
        .await?
        .reason
        .unwrap_or_else(|| format!("revoked through the management API by {}", admin.id));
    keystore::check_text("reason", &reason).map_err(|e| bad(e.to_string()))?;
    if reason.trim().is_empty() {
        return Err(bad("reason must not be empty".into()));
    }
    let record = find_key_to_change(&state, path).await?;
    let id = record.id.clone();
    let outcome = state
        .store_call(move |store| async move { store.revoke(&id, &reason, now).await })
        .await?;
    tracing::info!(admin = %admin.id, key = %record.id, "key revoked through the management API");
    Ok(Json(json!({
        "outcome": match outcome {
            Revocation::Revoked(_) => "revoked",
            Revocation::AlreadyRevoked(_) => "already_revoked",
        },
        "data": key_view::managed_key(outcome.record(), now),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_queries_are_read_strictly() {
        assert_eq!(parse_list_query(None).unwrap(), ListQuery::default());
        let q = parse_list_query(Some("offset=100&include_disabled=true")).unwrap();
        assert_eq!(
            (q.offset, q.include_disabled, q.include_expired),
            (100, true, false)
        );
        for bad in [
            "offset=-1",
            "offset=x",
            "offset=99999999999999999999",
            "offset=10000001",
            "include_disabled=yes",
            "limit=5",
        ] {
            assert!(parse_list_query(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn expiries_must_be_utc_with_seconds() {
        assert!(parse_expiry("2030-01-01T00:00:00Z").is_ok());
        assert!(parse_expiry("2030-01-01T00:00:00+00:00").is_ok());
        for bad in [
            "2030-01-01T00:00:00+02:00",
            "2030-01-01T00:00Z",
            "tomorrow",
            "2030-01-01",
        ] {
            assert!(parse_expiry(bad).is_err(), "{bad}");
        }
    }
}
