//! The key model: types with their default rate limits, what a caller asks
//! for ([`KeySpec`]) and what the store holds ([`KeyRecord`]).

use super::KeyHash;
use ipnet::IpNet;
use serde::Serialize;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use thiserror::Error;
use time::OffsetDateTime;

/// The kind of key, which sets its default rate limit and what it may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyType {
    /// Full access.
    Standard,
    /// Restricted to listed model patterns, optionally spending-capped.
    Scoped,
    /// Issued to a member of a team (workspace); the limit is per member.
    Team,
    /// Dashboard only: never allowed to invoke a model.
    ReadOnly,
    /// Must have an expiry; expires by itself.
    Ephemeral,
}

impl KeyType {
    pub const ALL: [KeyType; 5] = [
        KeyType::Standard,
        KeyType::Scoped,
        KeyType::Team,
        KeyType::ReadOnly,
        KeyType::Ephemeral,
    ];

    /// The name used in the CLI, the database and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Standard => "standard",
            KeyType::Scoped => "scoped",
            KeyType::Team => "team",
            KeyType::ReadOnly => "read-only",
            KeyType::Ephemeral => "ephemeral",
        }
    }

    /// Default requests per minute.
    pub fn requests_per_minute(self) -> u32 {
        match self {
            KeyType::Standard => 600,
            KeyType::Scoped => 300,
            KeyType::Team => 200,
            KeyType::ReadOnly => 120,
            KeyType::Ephemeral => 150,
        }
    }

    /// Whether a key of this type may invoke a model at all.
    pub fn can_invoke_models(self) -> bool {
        self != KeyType::ReadOnly
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyType {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, SpecError> {
        KeyType::ALL
            .into_iter()
            .find(|t| t.as_str() == s || (s == "readonly" && *t == KeyType::ReadOnly))
            .ok_or_else(|| SpecError::UnknownType(s.to_string()))
    }
}

/// A key specification that cannot be issued.
#[derive(Debug, Error, PartialEq)]
pub enum SpecError {
    #[error(
        "unknown key type \"{}\" (standard, scoped, team, read-only, ephemeral)",
        crate::untrusted::one_line(.0, 40)
    )]
    UnknownType(String),
    #[error(
        "owner email \"{}\" is not an email address: give exactly one plain email address, like dev@example.com",
        crate::untrusted::one_line(.0, 120)
    )]
    BadEmail(String),
    #[error("the key name must not be empty")]
    EmptyName,
    #[error(
        "the key's {field} \"{}\" holds a control character (a line break, tab, escape or bidi override); use printable text",
        crate::untrusted::one_line(.value, 120)
    )]
    HostileText { field: &'static str, value: String },
    #[error("the key's {field} is {chars} characters long; at most {max} are kept")]
    TooLong {
        field: &'static str,
        chars: usize,
        max: usize,
    },
    #[error("an ephemeral key must have an expiry (--expires)")]
    EphemeralWithoutExpiry,
    #[error("a scoped key needs at least one model pattern (--scope), e.g. anthropic/*")]
    ScopedWithoutScopes,
    #[error("only scoped keys are restricted to model patterns; use --type scoped")]
    ScopesOnUnscopedKey,
    #[error("a team key needs a team (--team)")]
    TeamWithoutTeam,
    #[error(
        "bad model pattern \"{}\": use provider/model, provider/* or *",
        crate::untrusted::one_line(.0, 80)
    )]
    BadScope(String),
    #[error("the expiry {0} is not in the future")]
    ExpiryInPast(String),
    #[error("the credit limit must be a non-negative number, not {0}")]
    BadCreditLimit(f64),
    #[error(
        "unknown limit reset \"{}\" (daily, weekly, monthly)",
        crate::untrusted::one_line(.0, 40)
    )]
    UnknownLimitReset(String),
    #[error("the key's {0} must not be empty")]
    EmptyText(&'static str),
}

/// The UTC window a key's spending limit counts over, as OpenRouter resets
/// it: every day at midnight, every Monday, or on the 1st of each month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitReset {
    Daily,
    Weekly,
    Monthly,
}

impl LimitReset {
    pub const ALL: [LimitReset; 3] = [LimitReset::Daily, LimitReset::Weekly, LimitReset::Monthly];

    pub fn as_str(self) -> &'static str {
        match self {
            LimitReset::Daily => "daily",
            LimitReset::Weekly => "weekly",
            LimitReset::Monthly => "monthly",
        }
    }

    /// Midnight UTC starting the window that holds `at`.
    pub fn window_start(self, at: OffsetDateTime) -> OffsetDateTime {
        let date = at.to_offset(time::UtcOffset::UTC).date();
        let first = match self {
            LimitReset::Daily => date,
            LimitReset::Weekly => {
                date - time::Duration::days(i64::from(date.weekday().number_days_from_monday()))
            }
            LimitReset::Monthly => date.replace_day(1).unwrap_or(date),
        };
        first.midnight().assume_utc()
    }

    /// When the window that holds `at` ends and spending counts from 0.
    pub fn next_reset(self, at: OffsetDateTime) -> OffsetDateTime {
        let start = self.window_start(at);
        match self {
            LimitReset::Daily => start + time::Duration::days(1),
            LimitReset::Weekly => start + time::Duration::days(7),
            LimitReset::Monthly => {
                let date = start.date();
                let (year, month) = match date.month() {
                    time::Month::December => (date.year() + 1, time::Month::January),
                    m => (date.year(), m.next()),
                };
                time::Date::from_calendar_date(year, month, 1)
                    .map(|d| d.midnight().assume_utc())
                    .unwrap_or(start + time::Duration::days(31))
            }
        }
    }
}

impl fmt::Display for LimitReset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LimitReset {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, SpecError> {
        LimitReset::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| SpecError::UnknownLimitReset(s.to_string()))
    }
}

/// What a caller asks for when creating (or importing) a key.
#[derive(Debug, Clone, PartialEq)]
pub struct KeySpec {
    pub name: String,
    pub owner_id: String,
    pub owner_email: String,
    pub team: Option<String>,
    pub key_type: KeyType,
    pub scopes: Vec<String>,
    pub credit_limit: Option<f64>,
    pub expires_at: Option<OffsetDateTime>,
    pub allowed_ips: Vec<IpNet>,
    /// A key for administration only: the management API and the key
    /// check, never a model.
    pub management: bool,
    /// The window the credit limit resets over; none: a lifetime limit.
    pub limit_reset: Option<LimitReset>,
    /// Whether spending on the owner's own provider keys counts toward the
    /// limit (carried for OpenRouter's clients; keywarden records no BYOK
    /// spend).
    pub include_byok_in_limit: bool,
}

impl KeySpec {
    /// A standard key with no limits, owned by `owner_email`.
    pub fn new(name: impl Into<String>, owner_email: impl Into<String>) -> Self {
        let owner_email = owner_email.into();
        KeySpec {
            name: name.into(),
            owner_id: owner_email.clone(),
            owner_email,
            team: None,
            key_type: KeyType::Standard,
            scopes: Vec::new(),
            credit_limit: None,
            expires_at: None,
            allowed_ips: Vec::new(),
            management: false,
            limit_reset: None,
            include_byok_in_limit: false,
        }
    }

    /// Checks the rules every issued key obeys.
    pub fn validate(&self, now: OffsetDateTime) -> Result<(), SpecError> {
        if self.name.trim().is_empty() {
            return Err(SpecError::EmptyName);
        }
        if !is_plain_address(&self.owner_email) {
            return Err(SpecError::BadEmail(self.owner_email.clone()));
        }
        check_text("name", &self.name)?;
        check_text("owner id", &self.owner_id)?;
        if self.owner_id.trim().is_empty() {
            return Err(SpecError::EmptyText("owner id"));
        }
        if let Some(team) = &self.team {
            check_text("team", team)?;
            if team.trim().is_empty() {
                return Err(SpecError::EmptyText("team"));
            }
        }
        match self.key_type {
            KeyType::Ephemeral if self.expires_at.is_none() => {
                return Err(SpecError::EphemeralWithoutExpiry);
            }
            KeyType::Scoped if self.scopes.is_empty() => {
                return Err(SpecError::ScopedWithoutScopes);
            }
            KeyType::Team if self.team.as_deref().is_none_or(str::is_empty) => {
                return Err(SpecError::TeamWithoutTeam);
            }
            t if t != KeyType::Scoped && !self.scopes.is_empty() => {
                return Err(SpecError::ScopesOnUnscopedKey);
            }
            _ => {}
        }
        if let Some(bad) = self.scopes.iter().find(|s| !valid_scope(s)) {
            return Err(SpecError::BadScope(bad.clone()));
        }
        if let Some(at) = self.expires_at.filter(|at| *at <= now) {
            return Err(SpecError::ExpiryInPast(rfc3339(at)));
        }
        if let Some(limit) = self.credit_limit.filter(|l| !l.is_finite() || *l < 0.0) {
            return Err(SpecError::BadCreditLimit(limit));
        }
        Ok(())
    }
}

/// The longest name, team, owner id or label a key may have, in characters.
pub const MAX_TEXT_CHARS: usize = 200;

/// Refuses text that could forge lines or drive a terminal where it is
/// shown (tables, logs, emails), and text too long to show.
pub fn check_text(field: &'static str, value: &str) -> Result<(), SpecError> {
    if value.chars().any(crate::untrusted::is_hostile) {
        return Err(SpecError::HostileText {
            field,
            value: value.to_string(),
        });
    }
    let chars = value.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Err(SpecError::TooLong {
            field,
            chars,
            max: MAX_TEXT_CHARS,
        });
    }
    Ok(())
}

/// Whether the mailer reads `text` as exactly this one address and nothing
/// else: no display name, no second address, no comment, no spaces, and a
/// domain with a dot. Parsed with the mailer's own parser (lettre), so what
/// is accepted here is where the email goes.
pub fn is_plain_address(text: &str) -> bool {
    let Ok(mailbox) = text.parse::<lettre::message::Mailbox>() else {
        return false;
    };
    let address: &str = mailbox.email.as_ref();
    mailbox.name.is_none()
        && address == text
        && mailbox.email.domain().contains('.')
        && !text
            .chars()
            .any(|c| c.is_whitespace() || crate::untrusted::is_hostile(c))
}

/// `*`, `provider/*` or `provider/model` with no spaces.
fn valid_scope(scope: &str) -> bool {
    if scope == "*" {
        return true;
    }
    let Some((provider, model)) = scope.split_once('/') else {
        return false;
    };
    let ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:/*".contains(c))
    };
    ok(provider) && !provider.contains('*') && ok(model)
}

/// Whether a key is usable now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    Active,
    Revoked,
    Expired,
    /// Turned off by an operator; may be turned on again (a revoked key
    /// never can).
    Disabled,
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyState::Active => "active",
            KeyState::Revoked => "revoked",
            KeyState::Expired => "expired",
            KeyState::Disabled => "disabled",
        })
    }
}

impl FromStr for KeyState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "active" => Ok(KeyState::Active),
            "revoked" => Ok(KeyState::Revoked),
            "expired" => Ok(KeyState::Expired),
            "disabled" => Ok(KeyState::Disabled),
            _ => Err(format!(
                "unknown state {s:?} (active, revoked, expired, disabled)"
            )),
        }
    }
}

/// A key as the store holds it: everything but the key itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyRecord {
    pub id: String,
    pub name: String,
    pub owner_id: String,
    pub owner_email: String,
    pub team: Option<String>,
    #[serde(rename = "type")]
    pub key_type: KeyType,
    pub scopes: Vec<String>,
    pub credit_limit: Option<f64>,
    pub usage: f64,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    pub allowed_ips: Vec<IpNet>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    /// When the key stops (or stopped) working because it was revoked; a
    /// time in the future is a scheduled revocation (rotation with grace).
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    pub revocation_reason: Option<String>,
    /// OpenRouter's display label, e.g. `sk-or-v1-3fa...9c0`.
    pub label: String,
    #[serde(serialize_with = "serialize_hash")]
    pub key_hash: KeyHash,
    /// A key for administration only (OpenRouter's management key).
    #[serde(rename = "is_management_key")]
    pub management: bool,
    pub limit_reset: Option<LimitReset>,
    pub include_byok_in_limit: bool,
    /// When an operator turned the key off, and who (`cli`, or
    /// `api:<management key id>`); none while it is on.
    #[serde(with = "time::serde::rfc3339::option")]
    pub disabled_at: Option<OffsetDateTime>,
    pub disabled_by: Option<String>,
    /// When the key's settings last changed after creation.
    #[serde(with = "time::serde::rfc3339::option")]
    pub updated_at: Option<OffsetDateTime>,
    /// When the key was deleted through the management API: it is revoked
    /// and the API no longer shows it; the row stays, so a later leak
    /// report still finds the key.
    #[serde(with = "time::serde::rfc3339::option")]
    pub deleted_at: Option<OffsetDateTime>,
    /// Spend in the day, week and month that held `usage_at`, the last
    /// spend; read them through [`KeyRecord::usage_in`].
    #[serde(skip)]
    pub window_usage: WindowUsage,
}

/// Spend per reset window as of the last spend.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WindowUsage {
    pub daily: f64,
    pub weekly: f64,
    pub monthly: f64,
    pub at: Option<OffsetDateTime>,
}

fn serialize_hash<S: serde::Serializer>(h: &KeyHash, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&h.to_hex())
}

impl KeyRecord {
    /// Active, revoked (at or before `now`), expired or disabled, in that
    /// order of precedence: a revoked key stays revoked whatever else is
    /// done to it.
    pub fn state(&self, now: OffsetDateTime) -> KeyState {
        if self.revoked_at.is_some_and(|at| at <= now) {
            KeyState::Revoked
        } else if self.expires_at.is_some_and(|at| at <= now) {
            KeyState::Expired
        } else if self.disabled_at.is_some() {
            KeyState::Disabled
        } else {
            KeyState::Active
        }
    }

    /// Whether the key may invoke a model: never a management key or a
    /// read-only one.
    pub fn can_invoke_models(&self) -> bool {
        !self.management && self.key_type.can_invoke_models()
    }

    /// Spend in the `window` that holds `now`: 0 once the window of the
    /// last spend has rolled over.
    pub fn usage_in(&self, window: LimitReset, now: OffsetDateTime) -> f64 {
        let w = &self.window_usage;
        match w.at {
            Some(at) if window.window_start(at) == window.window_start(now) => match window {
                LimitReset::Daily => w.daily,
                LimitReset::Weekly => w.weekly,
                LimitReset::Monthly => w.monthly,
            },
            _ => 0.0,
        }
    }

    /// What the credit limit is compared with: the spend of the current
    /// window when the limit resets, the lifetime usage otherwise.
    pub fn limit_spend(&self, now: OffsetDateTime) -> f64 {
        match self.limit_reset {
            Some(window) => self.usage_in(window, now),
            None => self.usage,
        }
    }

    /// Whether `ip` may use this key: any address when no allowlist is set.
    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.allowed_ips.is_empty() || self.allowed_ips.iter().any(|net| net.contains(&ip))
    }

    /// Credits left under the limit as of `now`, if there is one.
    pub fn limit_remaining(&self, now: OffsetDateTime) -> Option<f64> {
        self.credit_limit
            .map(|l| (l - self.limit_spend(now)).max(0.0))
    }
}

/// RFC 3339 text of a timestamp (UTC as given).
pub fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    #[test]
    fn default_rate_limits_follow_the_key_type() {
        let limits: Vec<u32> = KeyType::ALL
            .iter()
            .map(|t| t.requests_per_minute())
            .collect();
        assert_eq!(limits, [600, 300, 200, 120, 150]);
        assert!(!KeyType::ReadOnly.can_invoke_models());
        assert!(KeyType::Scoped.can_invoke_models());
        for t in KeyType::ALL {
            assert_eq!(t.as_str().parse::<KeyType>(), Ok(t));
        }
    }

    #[test]
    fn ephemeral_key_needs_an_expiry_in_the_future() {
        let mut spec = KeySpec::new("ci", "dev@example.com");
        spec.key_type = KeyType::Ephemeral;
        assert_eq!(spec.validate(now()), Err(SpecError::EphemeralWithoutExpiry));
        spec.expires_at = Some(now() - Duration::hours(1));
        assert!(matches!(
            spec.validate(now()),
            Err(SpecError::ExpiryInPast(_))
        ));
        spec.expires_at = Some(now() + Duration::hours(1));
        assert_eq!(spec.validate(now()), Ok(()));
    }

    #[test]
    fn scopes_belong_to_scoped_keys_only() {
        let mut spec = KeySpec::new("x", "dev@example.com");
        spec.scopes = vec!["anthropic/*".into()];
        assert_eq!(spec.validate(now()), Err(SpecError::ScopesOnUnscopedKey));
        spec.key_type = KeyType::Scoped;
        assert_eq!(spec.validate(now()), Ok(()));
        spec.scopes = vec!["*/claude".into()];
        assert_eq!(
            spec.validate(now()),
            Err(SpecError::BadScope("*/claude".into()))
        );
        spec.scopes.clear();
        assert_eq!(spec.validate(now()), Err(SpecError::ScopedWithoutScopes));
    }

    fn utc(text: &str) -> OffsetDateTime {
        OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).unwrap()
    }

    #[test]
    fn limit_windows_reset_at_midnight_utc_on_monday_and_the_first() {
        // 2026-12-02 is a Wednesday.
        let at = utc("2026-12-02T23:59:59+05:00");
        assert_eq!(
            LimitReset::Daily.window_start(at),
            utc("2026-12-02T00:00:00Z")
        );
        assert_eq!(
            LimitReset::Weekly.window_start(at),
            utc("2026-11-30T00:00:00Z")
        );
        assert_eq!(
            LimitReset::Monthly.window_start(at),
            utc("2026-12-01T00:00:00Z")
        );
        assert_eq!(
            LimitReset::Daily.next_reset(at),
            utc("2026-12-03T00:00:00Z")
        );
        assert_eq!(
            LimitReset::Weekly.next_reset(at),
            utc("2026-12-07T00:00:00Z")
        );
        assert_eq!(
            LimitReset::Monthly.next_reset(at),
            utc("2027-01-01T00:00:00Z")
        );
        let monday = utc("2026-12-07T00:00:00Z");
        assert_eq!(LimitReset::Weekly.window_start(monday), monday);
    }

    #[test]
    fn limit_remaining_follows_the_window_of_the_last_spend() {
        let mut record = crate::keystore::lifecycle::tests_record();
        record.credit_limit = Some(10.0);
        record.usage = 9.0;
        record.window_usage = WindowUsage {
            daily: 1.0,
            weekly: 4.0,
            monthly: 6.0,
            at: Some(utc("2026-12-02T10:00:00Z")),
        };
        let same_day = utc("2026-12-02T23:00:00Z");
        let next_day = utc("2026-12-03T00:00:00Z");
        let next_week = utc("2026-12-07T00:00:01Z");
        let next_month = utc("2027-01-01T00:00:00Z");
        // A lifetime limit counts all usage.
        assert_eq!(record.limit_remaining(next_month), Some(1.0));
        record.limit_reset = Some(LimitReset::Daily);
        assert_eq!(record.limit_remaining(same_day), Some(9.0));
        assert_eq!(record.limit_remaining(next_day), Some(10.0));
        record.limit_reset = Some(LimitReset::Weekly);
        assert_eq!(record.limit_remaining(next_day), Some(6.0));
        assert_eq!(record.limit_remaining(next_week), Some(10.0));
        record.limit_reset = Some(LimitReset::Monthly);
        assert_eq!(record.limit_remaining(next_week), Some(4.0));
        assert_eq!(record.limit_remaining(next_month), Some(10.0));
        assert_eq!(record.usage_in(LimitReset::Monthly, next_month), 0.0);
    }

    #[test]
    fn bad_email_and_team_are_refused() {
        let spec = KeySpec::new("x", "not-an-email");
        assert!(matches!(spec.validate(now()), Err(SpecError::BadEmail(_))));
        let mut spec = KeySpec::new("x", "a@b.io");
        spec.key_type = KeyType::Team;
        assert_eq!(spec.validate(now()), Err(SpecError::TeamWithoutTeam));
    }
}
