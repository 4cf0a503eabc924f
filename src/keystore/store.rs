//! The storage trait and the choice of backend from a database URL.

use super::model::check_text;
use super::sql::{PostgresStore, SqliteStore};
use super::usage::{AlertEvidence, Incident, KeyHistory, NewAlert, UsageRow, UsageSummary};
use super::{KeyHash, KeyRecord, KeyState, LimitReset, SpecError, StoreError};
use async_trait::async_trait;
use std::sync::Arc;
use time::OffsetDateTime;

/// Which keys `list` returns.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub owner_email: Option<String>,
    pub state: Option<KeyState>,
}

/// Which keys a page of the management API holds, newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageFilter {
    /// Disabled and revoked keys too.
    pub include_disabled: bool,
    /// Expired keys too.
    pub include_expired: bool,
    pub offset: u64,
    pub limit: u64,
}

/// A change to a key's settings; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyUpdate {
    pub name: Option<String>,
    /// Turn the key off (`true`) or on again (`false`).
    pub disabled: Option<bool>,
    /// A new credit limit, or `Some(None)` for none.
    pub credit_limit: Option<Option<f64>>,
    pub limit_reset: Option<Option<LimitReset>>,
    pub include_byok_in_limit: Option<bool>,
}

impl KeyUpdate {
    /// Checks the new values by the rules every key obeys.
    pub fn validate(&self) -> Result<(), SpecError> {
        if let Some(name) = &self.name {
            if name.trim().is_empty() {
                return Err(SpecError::EmptyName);
            }
            check_text("name", name)?;
        }
        if let Some(Some(limit)) = self.credit_limit
            && (!limit.is_finite() || limit < 0.0)
        {
            return Err(SpecError::BadCreditLimit(limit));
        }
        Ok(())
    }
}

/// What an update did.
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateOutcome {
    Updated(KeyRecord),
    /// No such key, or it was deleted.
    NotFound,
    /// The update would turn a revoked key on again: nothing changed.
    Revoked(KeyRecord),
}

/// The outcome of a revocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Revocation {
    /// This call revoked the key.
    Revoked(KeyRecord),
    /// The key was revoked before (by another caller, perhaps at the same
    /// moment); nothing changed.
    AlreadyRevoked(KeyRecord),
}

impl Revocation {
    pub fn record(&self) -> &KeyRecord {
        match self {
            Revocation::Revoked(r) | Revocation::AlreadyRevoked(r) => r,
        }
    }
}

/// A report that a key leaked, as recorded with the incident.
#[derive(Debug, Clone, PartialEq)]
pub struct LeakReport {
    /// SHA-256 of the reported token.
    pub hash: KeyHash,
    /// Who reported it, e.g. `github-secret-scanning` (also the revocation
    /// reason).
    pub reporter: String,
    /// The token type as the reporter named it.
    pub token_type: String,
    /// Where it was found.
    pub url: Option<String>,
    /// What kind of place (`commit`, `issue_comment`, …).
    pub source: String,
    pub request_id: Option<String>,
}

/// What recording one leak report did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeakOutcome {
    /// A working key: revoked now, incident recorded, owner's email queued.
    Revoked { key_id: String },
    /// Our key, revoked before: the sighting is recorded, nothing else.
    AlreadyRevoked { key_id: String },
    /// Not a key of this store: nothing changed.
    Unknown,
}

/// A claimed outbox email with what it needs to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEmail {
    pub id: i64,
    /// `key-revoked`.
    pub kind: String,
    pub recipient: String,
    /// Attempts so far, this one included.
    pub attempts: i64,
    pub key: KeyRecord,
    pub url: Option<String>,
    pub source: String,
    pub reporter: String,
    pub reported_at: OffsetDateTime,
    /// For an alert that a revoked key is still in use: the attempts
    /// since its revocation, as of when the email is written.
    pub evidence: Option<UsageSummary>,
    /// `email` (to `recipient`) or `webhook` (`recipient` is its URL).
    pub channel: String,
    /// For a new-network or spike alert: what was found.
    pub alert: Option<AlertEvidence>,
}

/// The outbox kind of the alert that a key revoked because it leaked is
/// still being tried.
pub const STILL_IN_USE: &str = "key-still-in-use";
/// The outbox kind of the alert that a key was used from a network it had
/// never been used from.
pub const NEW_NETWORK: &str = "key-new-network";
/// The outbox kind of the alert that a key's use spiked over its usual
/// rate.
pub const USAGE_SPIKE: &str = "key-usage-spike";

/// An outbox row as an operator sees it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OutboxRow {
    pub id: i64,
    pub key_id: String,
    pub kind: String,
    pub recipient: String,
    /// `pending`, `sent`, `failed` (permanent error) or `dead` (out of
    /// attempts).
    pub state: String,
    pub attempts: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub next_attempt_at: OffsetDateTime,
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub sent_at: Option<OffsetDateTime>,
    /// Every attempt's error, oldest first.
    pub errors: Vec<String>,
}

/// How a delivery attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptOutcome {
    Sent,
    /// A transient failure: try again at this time.
    Retry(OffsetDateTime),
    /// A transient failure with no attempts left.
    Dead,
    /// A permanent failure: not retried.
    Failed,
}

impl AttemptOutcome {
    fn state(&self) -> &'static str {
        match self {
            AttemptOutcome::Sent => "sent",
            AttemptOutcome::Retry(_) => "pending",
            AttemptOutcome::Dead => "dead",
            AttemptOutcome::Failed => "failed",
        }
    }
}

pub(crate) fn outcome_state(o: &AttemptOutcome) -> &'static str {
    o.state()
}

/// One key's claim in a batch of shared rate-limit tokens (see
/// `keywarden_rate_sync` in the PostgreSQL migrations).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RateClaim {
    #[serde(rename = "k")]
    pub key_id: String,
    /// Requests the key may make in any 60 seconds.
    #[serde(rename = "l")]
    pub limit: u32,
    /// Tokens wanted now (0: only refund).
    #[serde(rename = "w")]
    pub want: u32,
    /// Tokens of the replica's current grant given back unspent …
    #[serde(rename = "rn")]
    pub refund: u32,
    /// … and spent since the last report (counted from now on) …
    #[serde(rename = "sp")]
    pub spent: u32,
    /// … both taken off the slot of that grant.
    #[serde(rename = "rs")]
    pub grant_slot: i64,
}

/// What the store granted one claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateGrant {
    pub key_id: String,
    pub granted: u32,
    /// The store's one-second slot the tokens count in.
    pub slot: i64,
    /// Tokens counted in the key's window, these included.
    pub used: u32,
    /// When the window is full: how long until it has room for one more.
    pub room_in: Option<std::time::Duration>,
}

/// Where keys live. Every method is one transaction: a failure leaves the
/// store as it was.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// Succeeds when the store answers a query.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Adds a key; `Duplicate` if its hash is already stored.
    async fn insert(&self, record: &KeyRecord) -> Result<(), StoreError>;
    async fn get(&self, id: &str) -> Result<Option<KeyRecord>, StoreError>;
    async fn find_by_hash(&self, hash: &KeyHash) -> Result<Option<KeyRecord>, StoreError>;
    /// Keys matching `filter`, oldest first; states as of `now`.
    async fn list(
        &self,
        filter: &ListFilter,
        now: OffsetDateTime,
    ) -> Result<Vec<KeyRecord>, StoreError>;
    /// A page of keys not deleted, newest first; states as of `now`.
    async fn page(
        &self,
        filter: &PageFilter,
        now: OffsetDateTime,
    ) -> Result<Vec<KeyRecord>, StoreError>;
    /// Changes key `id`'s settings in one statement, as `by` at `at`. A
    /// revoked key is never turned on again (revocation wins over any
    /// concurrent update); disabling keeps the first who and when.
    async fn update(
        &self,
        id: &str,
        update: &KeyUpdate,
        by: &str,
        at: OffsetDateTime,
    ) -> Result<UpdateOutcome, StoreError>;
    /// Deletes key `id` as the management API does: revoked (`reason`) and
    /// hidden from the API, in one transaction. False when there is no
    /// such key or it was deleted before.
    async fn delete(&self, id: &str, reason: &str, at: OffsetDateTime) -> Result<bool, StoreError>;
    /// Revokes key `id` as of `at`, atomically: of several concurrent
    /// callers exactly one gets `Revoked`, the others `AlreadyRevoked`.
    /// A key whose scheduled revocation lies after `at` is revoked at `at`.
    async fn revoke(
        &self,
        id: &str,
        reason: &str,
        at: OffsetDateTime,
    ) -> Result<Revocation, StoreError>;
    /// Inserts `new` and schedules the revocation of `old_id` at
    /// `revoke_old_at` (now, or after a grace period), in one transaction.
    async fn rotate(
        &self,
        old_id: &str,
        new: &KeyRecord,
        revoke_old_at: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// Records leak reports in one transaction: each working key reported is
    /// revoked (conditionally, so concurrent deliveries revoke it once),
    /// with an incident and one queued email to its owner; a key revoked
    /// before gets a sighting incident only. Outcomes are in input order.
    async fn record_leaks(
        &self,
        reports: &[LeakReport],
        at: OffsetDateTime,
    ) -> Result<Vec<LeakOutcome>, StoreError>;
    /// Emails waiting to be sent.
    async fn outbox_depth(&self) -> Result<i64, StoreError>;
    /// Claims up to `limit` due emails for `worker` until `lease_until`:
    /// no other worker gets them before the lease runs out.
    async fn claim_outbox(
        &self,
        worker: &str,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: i64,
    ) -> Result<Vec<OutboxEmail>, StoreError>;
    /// Records how an attempt ended; false when `worker` no longer holds
    /// the lease (another worker took the email over).
    async fn finish_outbox(
        &self,
        id: i64,
        worker: &str,
        outcome: &AttemptOutcome,
        error: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Outbox rows, newest first, optionally in one state.
    async fn list_outbox(&self, state: Option<&str>) -> Result<Vec<OutboxRow>, StoreError>;
    /// Makes a failed or dead (or pending) email due now; false if there is
    /// no such email or it was sent.
    async fn retry_outbox(&self, id: i64, now: OffsetDateTime) -> Result<bool, StoreError>;
    /// Emails by state.
    async fn outbox_counts(&self) -> Result<Vec<(String, i64)>, StoreError>;
    /// Records that the key was used at `at`.
    async fn touch(&self, id: &str, at: OffsetDateTime) -> Result<(), StoreError>;
    /// Grants rate-limit tokens for every claim in one statement, so that
    /// all replicas on this store together admit at most each key's limit
    /// in any 60 seconds. Each key appears at most once in `claims`.
    /// `SharedRatesUnsupported` on a store that keeps no shared counts
    /// (SQLite: one replica counts in memory).
    async fn claim_rates(&self, claims: &[RateClaim]) -> Result<Vec<RateGrant>, StoreError>;
    /// Drops the counts of keys whose windows are empty.
    async fn prune_rates(&self) -> Result<(), StoreError>;
    /// Appends key checks to the usage log, in one transaction.
    async fn record_usage(&self, rows: &[UsageRow]) -> Result<(), StoreError>;
    /// Deletes usage records from before `before`; how many.
    async fn prune_usage(&self, before: OffsetDateTime) -> Result<u64, StoreError>;
    /// Key `id`'s checks from `since` on; with `refused_only`, only those
    /// refused for the key's state or the caller's address (the attempts
    /// after a revocation), not admitted or rate-limited ones.
    async fn usage_summary(
        &self,
        id: &str,
        since: OffsetDateTime,
        refused_only: bool,
    ) -> Result<UsageSummary, StoreError>;
    /// Incidents, newest first (at most 1,000): all, or key `key_id`'s.
    async fn incidents(&self, key_id: Option<&str>) -> Result<Vec<Incident>, StoreError>;
    async fn incident(&self, id: i64) -> Result<Option<Incident>, StoreError>;
    /// Queues an alert to the key's owner (and webhook), once per key,
    /// kind and dedup: false when it was queued before, or when it is a
    /// still-in-use alert and the key has no leak incident.
    async fn queue_alert(&self, alert: &NewAlert<'_>) -> Result<bool, StoreError>;
    /// Key `id`'s use by network, over its trailing week and its last
    /// five minutes, as of `now`.
    async fn key_history(&self, id: &str, now: OffsetDateTime) -> Result<KeyHistory, StoreError>;
}

/// Opens (creating when needed) the store at `url` and brings its schema up
/// to date: `sqlite://FILE` (or `sqlite::memory:`) or `postgres://…`.
pub async fn open_store(url: &str) -> Result<Arc<dyn KeyStore>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::open(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl(redact_url(url)))
    }
}

/// Opens the store at `url` only if it exists: commands that read or
/// change keys already made never leave a new, empty SQLite file behind
/// (a mistyped `--database-url` is an error, not an empty list).
pub async fn open_existing_store(url: &str) -> Result<Arc<dyn KeyStore>, StoreError> {
    if url.starts_with("sqlite:") {
        let options = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(url)
            .map_err(|_| StoreError::UnsupportedUrl(redact_url(url)))?;
        let file = options.get_filename();
        let in_memory = file.as_os_str().is_empty() || file.as_os_str() == ":memory:";
        if !in_memory && !file.is_file() {
            return Err(StoreError::NoStore(redact_url(url)));
        }
    }
    open_store(url).await
}

/// The URL without a password, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_cut_from_urls_in_errors() {
        assert_eq!(
            redact_url("mysql://u:secret@db:3306/x"),
            "mysql://u:***@db:3306/x"
        );
        assert_eq!(redact_url("keywarden.db"), "keywarden.db");
    }
}
