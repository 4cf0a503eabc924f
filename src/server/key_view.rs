//! Keys in OpenRouter's JSON shapes: the `data` of `GET /api/v1/key` and
//! the key objects of the management API (`/api/v1/keys`), each with every
//! field OpenRouter's SDK requires and keywarden's own fields under their
//! own names. Which fields are live data and which are OpenRouter's value
//! for a concept keywarden does not have is listed in the README.

use crate::keystore::{KeyRecord, KeyState, LimitReset, rfc3339};
use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

/// What the rate limit note says (OpenRouter's field is free text).
const RATE_LIMIT_NOTE: &str =
    "keywarden's per-key limit for this key type, counted by each replica";

/// A key's spend: lifetime and per UTC window, and OpenRouter's BYOK
/// spend, which keywarden does not record (0). Both shapes carry it.
#[derive(Serialize)]
struct UsageWindows {
    usage: f64,
    usage_daily: f64,
    usage_weekly: f64,
    usage_monthly: f64,
    byok_usage: f64,
    byok_usage_daily: f64,
    byok_usage_weekly: f64,
    byok_usage_monthly: f64,
}

impl UsageWindows {
    fn of(r: &KeyRecord, now: OffsetDateTime) -> Self {
        UsageWindows {
            usage: r.usage,
            usage_daily: r.usage_in(LimitReset::Daily, now),
            usage_weekly: r.usage_in(LimitReset::Weekly, now),
            usage_monthly: r.usage_in(LimitReset::Monthly, now),
            byok_usage: 0.0,
            byok_usage_daily: 0.0,
            byok_usage_weekly: 0.0,
            byok_usage_monthly: 0.0,
        }
    }
}

/// OpenRouter's `rate_limit` object.
#[derive(Serialize)]
struct RateLimit {
    requests: u32,
    interval: &'static str,
    note: &'static str,
}

/// OpenRouter's `free_model_daily_requests` object.
#[derive(Serialize)]
struct FreeModelDailyRequests {
    limit: u32,
    remaining: u32,
    used: u32,
}

/// The key's own credit limit as OpenRouter's budget layer `key_limit`.
#[derive(Serialize)]
struct KeyLimitBudget {
    scope: &'static str,
    budget_id: Option<()>,
    guardrail_id: Option<()>,
    include_byok: bool,
    limit_usd: f64,
    spend_usd: f64,
    remaining_usd: f64,
    reset_interval: Option<LimitReset>,
    resets_at: Option<String>,
}

/// The `data` of `GET /api/v1/key`: typed and borrowed, since every key
/// check writes one.
#[derive(Serialize)]
pub struct CurrentKey<'a> {
    label: &'a str,
    name: &'a str,
    limit: Option<f64>,
    limit_remaining: Option<f64>,
    limit_reset: Option<LimitReset>,
    include_byok_in_limit: bool,
    #[serde(flatten)]
    usage: UsageWindows,
    is_free_tier: bool,
    is_management_key: bool,
    /// OpenRouter's earlier name for a management key.
    is_provisioning_key: bool,
    rate_limit: RateLimit,
    expires_at: Option<String>,
    creator_user_id: &'a str,
    workspace_id: Option<&'a str>,
    organization_id: Option<()>,
    budgets: &'a [KeyLimitBudget],
    effective_budget: Option<&'a KeyLimitBudget>,
    allowed_data_regions: &'static [&'static str],
    free_model_daily_requests: FreeModelDailyRequests,
    // keywarden's own.
    #[serde(rename = "type")]
    key_type: crate::keystore::KeyType,
    scopes: &'a [String],
    team: Option<&'a str>,
    allowed_ips: &'a [ipnet::IpNet],
    can_invoke_models: bool,
}

fn key_limit_budget(r: &KeyRecord, now: OffsetDateTime) -> Option<KeyLimitBudget> {
    let limit = r.credit_limit?;
    let spend = r.limit_spend(now);
    Some(KeyLimitBudget {
        scope: "key_limit",
        budget_id: None,
        guardrail_id: None,
        include_byok: r.include_byok_in_limit,
        limit_usd: limit,
        spend_usd: spend,
        remaining_usd: limit - spend,
        reset_interval: r.limit_reset,
        resets_at: r.limit_reset.map(|w| rfc3339(w.next_reset(now))),
    })
}

/// Writes the `{"data": …}` of `GET /api/v1/key` for the calling key.
pub fn current_key(r: &KeyRecord, now: OffsetDateTime) -> Vec<u8> {
    let budget = key_limit_budget(r, now);
    let budgets = budget.as_slice();
    let data = CurrentKey {
        label: &r.label,
        name: &r.name,
        limit: r.credit_limit,
        limit_remaining: r.limit_remaining(now),
        limit_reset: r.limit_reset,
        include_byok_in_limit: r.include_byok_in_limit,
        usage: UsageWindows::of(r, now),
        is_free_tier: false,
        is_management_key: r.management,
        is_provisioning_key: r.management,
        rate_limit: RateLimit {
            requests: r.key_type.requests_per_minute(),
            interval: "1m",
            note: RATE_LIMIT_NOTE,
        },
        expires_at: r.expires_at.map(rfc3339),
        creator_user_id: &r.owner_id,
        workspace_id: r.team.as_deref(),
        organization_id: None,
        budgets,
        effective_budget: budgets.first(),
        allowed_data_regions: if r.can_invoke_models() {
            &["global"]
        } else {
            &[]
        },
        free_model_daily_requests: FreeModelDailyRequests {
            limit: 0,
            remaining: 0,
            used: 0,
        },
        key_type: r.key_type,
        scopes: &r.scopes,
        team: r.team.as_deref(),
        allowed_ips: &r.allowed_ips,
        can_invoke_models: r.can_invoke_models(),
    };
    #[derive(Serialize)]
    struct Body<'a> {
        data: CurrentKey<'a>,
    }
    // Serializing plain data into a Vec cannot fail.
    serde_json::to_vec(&Body { data }).unwrap_or_default()
}

/// A key object of the management API.
pub fn managed_key(r: &KeyRecord, now: OffsetDateTime) -> Value {
    let state = r.state(now);
    let mut base = json!({
        "hash": r.key_hash.to_hex(),
        "name": r.name,
        "label": r.label,
        // OpenRouter knows no revocation: a revoked key is a disabled one.
        "disabled": matches!(state, KeyState::Disabled | KeyState::Revoked),
        "limit": r.credit_limit,
        "limit_remaining": r.limit_remaining(now),
        "limit_reset": r.limit_reset,
        "include_byok_in_limit": r.include_byok_in_limit,
        "created_at": rfc3339(r.created_at),
        "updated_at": r.updated_at.map(rfc3339),
        "last_used_at": r.last_used_at.map(rfc3339),
        "expires_at": r.expires_at.map(rfc3339),
        "creator_user_id": r.owner_id,
        "workspace_id": r.team.as_deref().unwrap_or("default"),
        "external_user": null,
        // keywarden's own.
        "id": r.id,
        "type": r.key_type,
        "scopes": r.scopes,
        "team": r.team,
        "allowed_ips": r.allowed_ips,
        "owner_email": r.owner_email,
        "is_management_key": r.management,
        "can_invoke_models": r.can_invoke_models(),
        "rate_limit_per_minute": r.key_type.requests_per_minute(),
        "state": state,
        "disabled_at": r.disabled_at.map(rfc3339),
        "disabled_by": r.disabled_by,
        "revoked_at": r.revoked_at.map(rfc3339),
        "revocation_reason": r.revocation_reason,
    });
    if let (Some(fields), Ok(Value::Object(usage))) = (
        base.as_object_mut(),
        serde_json::to_value(UsageWindows::of(r, now)),
    ) {
        fields.extend(usage);
    }
    base
}
