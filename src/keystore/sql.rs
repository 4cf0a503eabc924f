//! The two sqlx backends. Both speak the same SQL (`$n` placeholders,
//! integer Unix timestamps, JSON text for lists), so one generic store,
//! [`SqlStore`], implements [`KeyStore`] for both; a small [`Dialect`]
//! holds what differs.

use super::store::outcome_state;
use super::store::redact_url;
use super::{
    AttemptOutcome, Incident, KeyHash, KeyHistory, KeyRecord, KeyStore, KeyUpdate, LeakOutcome,
    LeakReport, ListFilter, MAX_NETWORKS, NetworkHistory, NewAlert, OutboxEmail, OutboxRow,
    PageFilter, RateClaim, RateGrant, Revocation, STILL_IN_USE, StoreError, UpdateOutcome,
    UsageCount, UsageRow, UsageSummary, WindowUsage, hour_of, network_of,
};
use async_trait::async_trait;
use sqlx::Connection;
use sqlx::migrate::Migrate;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};
use std::str::FromStr;
use std::time::Duration;
use time::OffsetDateTime;

static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

const COLUMNS: &str = "id, key_hash, label, name, owner_id, owner_email, team, key_type, scopes, \
     credit_limit, usage, expires_at, allowed_ips, created_at, last_used_at, revoked_at, \
     revocation_reason, is_management, limit_reset, include_byok_in_limit, disabled_at, \
     disabled_by, updated_at, deleted_at, usage_daily, usage_weekly, usage_monthly, usage_at";

/// Revokes key $3 as of $1 for reason $2, unless it was revoked before
/// (a scheduled revocation after $1 is brought forward).
const REVOKE_KEY: &str = "UPDATE keys SET revoked_at = $1, revocation_reason = $2, \
     revocation_scheduled = 0 WHERE id = $3 AND (revoked_at IS NULL \
     OR (revocation_scheduled = 1 AND revoked_at > $1))";

/// One statement for every change of settings, so that concurrent updates
/// and revocations each apply whole. `$1` name, `$2`/`$3` whether and what
/// credit limit, `$4`/`$5` whether and what limit reset, `$6` BYOK flag,
/// `$7` disabled (1), enabled (0) or unchanged (NULL), `$8` now, `$9` who,
/// `$10` the key's id. Turning a revoked key on again matches no row.
const UPDATE_KEY: &str = "UPDATE keys SET name = COALESCE($1, name), \
     credit_limit = CASE WHEN $2 = 1 THEN $3 ELSE credit_limit END, \
     limit_reset = CASE WHEN $4 = 1 THEN $5 ELSE limit_reset END, \
     include_byok_in_limit = COALESCE($6, include_byok_in_limit), \
     disabled_at = CASE COALESCE($7, -1) WHEN 1 THEN COALESCE(disabled_at, $8) \
     WHEN 0 THEN NULL ELSE disabled_at END, \
     disabled_by = CASE COALESCE($7, -1) WHEN 1 THEN COALESCE(disabled_by, $9) \
     WHEN 0 THEN NULL ELSE disabled_by END, \
     updated_at = $8 \
     WHERE id = $10 AND deleted_at IS NULL \
     AND NOT (COALESCE($7, -1) = 0 AND revoked_at IS NOT NULL AND revoked_at <= $8)";

/// The one revocation record of a key ($1 key id, $2 revoked at, $3 reason,
/// $4 recorded at); a scheduled one is brought forward.
const RECORD_REVOCATION: &str = "INSERT INTO revocations (key_id, revoked_at, reason, \
     recorded_at) VALUES ($1, $2, $3, $4) ON CONFLICT (key_id) DO UPDATE \
     SET revoked_at = excluded.revoked_at, reason = excluded.reason";

/// Hashes looked up per query (well under SQLite's bound-parameter limit).
const LOOKUP_CHUNK: usize = 500;

fn unix(at: OffsetDateTime) -> i64 {
    at.unix_timestamp()
}

fn corrupt(id: &str, reason: impl ToString) -> StoreError {
    StoreError::Corrupt {
        id: id.to_string(),
        reason: reason.to_string(),
    }
}

const INCIDENT_COLUMNS: &str =
    "id, key_id, kind, reporter, token_type, url, source, request_id, reported_at";

fn unix_ms(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn from_unix_ms(ms: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|e| corrupt("key_usage", e))
}

fn timestamp(id: &str, secs: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp(secs).map_err(|e| corrupt(id, e))
}

fn json_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "[]".to_string())
}

/// Refuses a database whose schema is newer than the migrations built in.
fn check_schema_version(found: Option<i64>, migrator: &Migrator) -> Result<(), StoreError> {
    let known = migrator.iter().map(|m| m.version).max().unwrap_or(0);
    match found {
        Some(found) if found > known => Err(StoreError::SchemaTooNew { found, known }),
        _ => Ok(()),
    }
}

/// Claims due outbox rows in one statement.
const SQLITE_CLAIM: &str = "UPDATE outbox SET claimed_by = $1, lease_until = $2, \
     attempts = attempts + 1 WHERE id IN (SELECT id FROM outbox WHERE state = 'pending' \
     AND next_attempt_at <= $3 AND (lease_until IS NULL OR lease_until <= $3) \
     ORDER BY id LIMIT $4) RETURNING id";
/// On PostgreSQL concurrent claimers skip each other's rows.
const POSTGRES_CLAIM: &str = "UPDATE outbox SET claimed_by = $1, lease_until = $2, \
     attempts = attempts + 1 WHERE id IN (SELECT id FROM outbox WHERE state = 'pending' \
     AND next_attempt_at <= $3 AND (lease_until IS NULL OR lease_until <= $3) \
     ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED) RETURNING id";

/// What differs between the two SQL backends. Everything else — every
/// statement but one, the row mapping, the transactions — is
/// [`SqlStore`]'s, written once for both.
pub trait Dialect: Send + Sync + 'static {
    type Db: Database;
    /// The name `KeyStore::backend` gives.
    const BACKEND: &'static str;
    /// The statement that claims due outbox rows (`$1` worker, `$2` lease
    /// end, `$3` now, `$4` limit), returning their ids.
    const CLAIM: &'static str;
    /// The column that orders rows of `keys` by insertion.
    const INSERT_ORDER: &'static str;
    /// Shared rate counts: the statement that grants a batch of claims
    /// (`$1` the claims as JSON) and the one that drops old counts; `None`
    /// when the backend keeps none.
    const RATE_CLAIM: Option<&'static str> = None;
    const RATE_PRUNE: Option<&'static str> = None;
    /// Appends usage rows given as one JSON array (`$1`) of
    /// `{k, h, t, ip, n, o, ua, c, s}` objects (`c` checks, the last `s` ms
    /// after the first): one statement whatever the batch's size, so it is
    /// prepared once.
    const USAGE_INSERT: &'static str;
    /// Adds counts given as one JSON array (`$1`) of `{k, h, n, c}` (key,
    /// hour in ms, network, requests) to `key_usage_hourly`.
    const USAGE_ROLLUP: &'static str;
    fn migrator() -> &'static Migrator;
    /// How many rows a statement changed.
    fn rows_affected(result: <Self::Db as Database>::QueryResult) -> u64;
}

/// The embedded backend.
pub struct Sqlite;

impl Dialect for Sqlite {
    type Db = sqlx::Sqlite;
    const BACKEND: &'static str = "sqlite";
    // SQLite runs one writer at a time, so the statement is atomic as it is.
    const CLAIM: &'static str = SQLITE_CLAIM;
    const INSERT_ORDER: &'static str = "rowid";
    const USAGE_INSERT: &'static str = "INSERT INTO key_usage \
         (key_id, key_hash, at_ms, ip, network, outcome, user_agent, requests, span_ms) \
         SELECT value ->> '$.k', value ->> '$.h', value ->> '$.t', value ->> '$.ip', \
         value ->> '$.n', value ->> '$.o', value ->> '$.ua', value ->> '$.c', value ->> '$.s' \
         FROM json_each($1)";
    const USAGE_ROLLUP: &'static str = "INSERT INTO key_usage_hourly \
         (key_id, hour_ms, network, requests) \
         SELECT value ->> '$.k', value ->> '$.h', value ->> '$.n', value ->> '$.c' \
         FROM json_each($1) WHERE true \
         ON CONFLICT (key_id, hour_ms, network) \
         DO UPDATE SET requests = requests + excluded.requests";
    fn migrator() -> &'static Migrator {
        &SQLITE_MIGRATOR
    }
    fn rows_affected(result: sqlx::sqlite::SqliteQueryResult) -> u64 {
        result.rows_affected()
    }
}

/// The shared backend, for several responder replicas.
pub struct Postgres;

impl Dialect for Postgres {
    type Db = sqlx::Postgres;
    const BACKEND: &'static str = "postgres";
    const CLAIM: &'static str = POSTGRES_CLAIM;
    const INSERT_ORDER: &'static str = "seq";
    const USAGE_INSERT: &'static str = "INSERT INTO key_usage \
         (key_id, key_hash, at_ms, ip, network, outcome, user_agent, requests, span_ms) \
         SELECT x.k, x.h, x.t, x.ip, x.n, x.o, x.ua, x.c, x.s FROM jsonb_to_recordset($1::jsonb) \
         AS x(k TEXT, h TEXT, t BIGINT, ip TEXT, n TEXT, o TEXT, ua TEXT, c INTEGER, s INTEGER)";
    // In key order, so that replicas writing the same rows lock them in
    // the same order and never deadlock.
    const USAGE_ROLLUP: &'static str = "INSERT INTO key_usage_hourly \
         (key_id, hour_ms, network, requests) \
         SELECT x.k, x.h, x.n, x.c \
         FROM jsonb_to_recordset($1::jsonb) AS x(k TEXT, h BIGINT, n TEXT, c BIGINT) \
         ORDER BY 1, 2, 3 \
         ON CONFLICT (key_id, hour_ms, network) \
         DO UPDATE SET requests = key_usage_hourly.requests + excluded.requests";
    const RATE_CLAIM: Option<&'static str> = Some(
        "SELECT out_key, out_granted::BIGINT, out_slot, out_used::BIGINT, out_room_in_ms \
         FROM keywarden_rate_sync($1)",
    );
    const RATE_PRUNE: Option<&'static str> = Some("SELECT keywarden_rate_prune()");
    fn migrator() -> &'static Migrator {
        &POSTGRES_MIGRATOR
    }
    fn rows_affected(result: sqlx::postgres::PgQueryResult) -> u64 {
        result.rows_affected()
    }
}

/// A key store on one sqlx pool of dialect `D`.
pub struct SqlStore<D: Dialect> {
    pool: Pool<D::Db>,
}

/// The embedded store: one SQLite file in WAL mode, created 0600.
pub type SqliteStore = SqlStore<Sqlite>;
/// The shared store: PostgreSQL.
pub type PostgresStore = SqlStore<Postgres>;

impl<D: Dialect> SqlStore<D>
where
    for<'c> &'c mut <D::Db as Database>::Connection: Executor<'c, Database = D::Db>,
    for<'q> <D::Db as Database>::Arguments<'q>: IntoArguments<'q, D::Db>,
    <D::Db as Database>::Connection: Migrate,
    for<'q> String: Encode<'q, D::Db>,
    for<'q> Option<String>: Encode<'q, D::Db>,
    for<'q> &'q str: Encode<'q, D::Db>,
    for<'q> Option<&'q str>: Encode<'q, D::Db>,
    for<'q> i64: Encode<'q, D::Db>,
    for<'q> Option<i64>: Encode<'q, D::Db>,
    for<'q> f64: Encode<'q, D::Db>,
    for<'q> Option<f64>: Encode<'q, D::Db>,
    String: Type<D::Db> + for<'r> Decode<'r, D::Db>,
    str: Type<D::Db>,
    i64: Type<D::Db> + for<'r> Decode<'r, D::Db>,
    f64: Type<D::Db> + for<'r> Decode<'r, D::Db>,
    for<'a> &'a str: ColumnIndex<<D::Db as Database>::Row>,
    usize: ColumnIndex<<D::Db as Database>::Row>,
{
    async fn migrate(pool: &Pool<D::Db>) -> Result<(), StoreError> {
        let found: Option<i64> = match sqlx::query("SELECT MAX(version) FROM _sqlx_migrations")
            .fetch_one(pool)
            .await
        {
            Ok(row) => row.try_get(0)?,
            // No migrations table yet: a new database.
            Err(sqlx::Error::Database(_)) => None,
            Err(e) => return Err(e.into()),
        };
        check_schema_version(found, D::migrator())?;
        D::migrator().run(pool).await?;
        Ok(())
    }

    fn record_from_row(row: &<D::Db as Database>::Row) -> Result<KeyRecord, StoreError> {
        let id: String = row.try_get("id")?;
        let hash: String = row.try_get("key_hash")?;
        let key_type: String = row.try_get("key_type")?;
        let scopes: String = row.try_get("scopes")?;
        let ips: String = row.try_get("allowed_ips")?;
        let opt_ts = |col: &str| -> Result<Option<OffsetDateTime>, StoreError> {
            let secs: Option<i64> = row.try_get(col)?;
            secs.map(|s| timestamp(&id, s)).transpose()
        };
        Ok(KeyRecord {
            key_hash: KeyHash::from_hex(&hash).ok_or_else(|| corrupt(&id, "bad key hash"))?,
            label: row.try_get("label")?,
            name: row.try_get("name")?,
            owner_id: row.try_get("owner_id")?,
            owner_email: row.try_get("owner_email")?,
            team: row.try_get("team")?,
            key_type: key_type.parse().map_err(|e| corrupt(&id, e))?,
            scopes: serde_json::from_str(&scopes).map_err(|e| corrupt(&id, e))?,
            credit_limit: row.try_get("credit_limit")?,
            usage: row.try_get("usage")?,
            expires_at: opt_ts("expires_at")?,
            allowed_ips: serde_json::from_str(&ips).map_err(|e| corrupt(&id, e))?,
            created_at: timestamp(&id, row.try_get("created_at")?)?,
            last_used_at: opt_ts("last_used_at")?,
            revoked_at: opt_ts("revoked_at")?,
            revocation_reason: row.try_get("revocation_reason")?,
            management: row.try_get::<i64, _>("is_management")? != 0,
            limit_reset: row
                .try_get::<Option<String>, _>("limit_reset")?
                .map(|r| r.parse())
                .transpose()
                .map_err(|e| corrupt(&id, e))?,
            include_byok_in_limit: row.try_get::<i64, _>("include_byok_in_limit")? != 0,
            disabled_at: opt_ts("disabled_at")?,
            disabled_by: row.try_get("disabled_by")?,
            updated_at: opt_ts("updated_at")?,
            deleted_at: opt_ts("deleted_at")?,
            window_usage: WindowUsage {
                daily: row.try_get("usage_daily")?,
                weekly: row.try_get("usage_weekly")?,
                monthly: row.try_get("usage_monthly")?,
                at: opt_ts("usage_at")?,
            },
            id,
        })
    }

    fn incident_from_row(row: &<D::Db as Database>::Row) -> Result<Incident, StoreError> {
        let id: i64 = row.try_get("id")?;
        Ok(Incident {
            key_id: row.try_get("key_id")?,
            kind: row.try_get("kind")?,
            reporter: row.try_get("reporter")?,
            token_type: row.try_get("token_type")?,
            url: row.try_get("url")?,
            source: row.try_get("source")?,
            request_id: row.try_get("request_id")?,
            reported_at: timestamp(&id.to_string(), row.try_get("reported_at")?)?,
            id,
        })
    }

    async fn insert_in<'e, E>(executor: E, r: &KeyRecord) -> Result<(), StoreError>
    where
        E: Executor<'e, Database = D::Db>,
    {
        let sql = format!(
            "INSERT INTO keys ({COLUMNS}) VALUES \
                     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
                     $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28)"
        );
        let w = &r.window_usage;
        let result = sqlx::query(&sql)
            .bind(&r.id)
            .bind(r.key_hash.to_hex())
            .bind(&r.label)
            .bind(&r.name)
            .bind(&r.owner_id)
            .bind(&r.owner_email)
            .bind(&r.team)
            .bind(r.key_type.as_str())
            .bind(json_text(&r.scopes))
            .bind(r.credit_limit)
            .bind(r.usage)
            .bind(r.expires_at.map(unix))
            .bind(json_text(&r.allowed_ips))
            .bind(unix(r.created_at))
            .bind(r.last_used_at.map(unix))
            .bind(r.revoked_at.map(unix))
            .bind(&r.revocation_reason)
            .bind(i64::from(r.management))
            .bind(r.limit_reset.map(|l| l.as_str()))
            .bind(i64::from(r.include_byok_in_limit))
            .bind(r.disabled_at.map(unix))
            .bind(&r.disabled_by)
            .bind(r.updated_at.map(unix))
            .bind(r.deleted_at.map(unix))
            .bind(w.daily)
            .bind(w.weekly)
            .bind(w.monthly)
            .bind(w.at.map(unix))
            .execute(executor)
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(StoreError::Duplicate(r.key_hash.to_hex()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Revokes key `id` inside `tx` and records the revocation; false when
    /// it was revoked before.
    async fn revoke_in(
        tx: &mut sqlx::Transaction<'_, D::Db>,
        id: &str,
        reason: &str,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let updated = D::rows_affected(
            sqlx::query(REVOKE_KEY)
                .bind(unix(at))
                .bind(reason)
                .bind(id)
                .execute(&mut **tx)
                .await?,
        );
        if updated == 1 {
            sqlx::query(RECORD_REVOCATION)
                .bind(id)
                .bind(unix(at))
                .bind(reason)
                .bind(unix(at))
                .execute(&mut **tx)
                .await?;
        }
        Ok(updated == 1)
    }
}

#[async_trait]
impl<D: Dialect> KeyStore for SqlStore<D>
where
    for<'c> &'c mut <D::Db as Database>::Connection: Executor<'c, Database = D::Db>,
    for<'q> <D::Db as Database>::Arguments<'q>: IntoArguments<'q, D::Db>,
    <D::Db as Database>::Connection: Migrate,
    for<'q> String: Encode<'q, D::Db>,
    for<'q> Option<String>: Encode<'q, D::Db>,
    for<'q> &'q str: Encode<'q, D::Db>,
    for<'q> Option<&'q str>: Encode<'q, D::Db>,
    for<'q> i64: Encode<'q, D::Db>,
    for<'q> Option<i64>: Encode<'q, D::Db>,
    for<'q> f64: Encode<'q, D::Db>,
    for<'q> Option<f64>: Encode<'q, D::Db>,
    String: Type<D::Db> + for<'r> Decode<'r, D::Db>,
    str: Type<D::Db>,
    i64: Type<D::Db> + for<'r> Decode<'r, D::Db>,
    f64: Type<D::Db> + for<'r> Decode<'r, D::Db>,
    for<'a> &'a str: ColumnIndex<<D::Db as Database>::Row>,
    usize: ColumnIndex<<D::Db as Database>::Row>,
{
    fn backend(&self) -> &'static str {
        D::BACKEND
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn insert(&self, record: &KeyRecord) -> Result<(), StoreError> {
        match Self::insert_in(&self.pool, record).await {
            Err(StoreError::Duplicate(_)) => {
                let existing = self.find_by_hash(&record.key_hash).await?;
                Err(StoreError::Duplicate(
                    existing.map(|r| r.id).unwrap_or_else(|| record.id.clone()),
                ))
            }
            other => other,
        }
    }

    async fn get(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM keys WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(Self::record_from_row).transpose()
    }

    async fn find_by_hash(&self, hash: &KeyHash) -> Result<Option<KeyRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM keys WHERE key_hash = $1");
        let row = sqlx::query(&sql)
            .bind(hash.to_hex())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(Self::record_from_row).transpose()
    }

    async fn list(
        &self,
        filter: &ListFilter,
        now: OffsetDateTime,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM keys WHERE ($1 IS NULL OR owner_email = $1) \
                     ORDER BY created_at, id"
        );
        let rows = sqlx::query(&sql)
            .bind(&filter.owner_email)
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let record = Self::record_from_row(row)?;
            if filter.state.is_none_or(|s| record.state(now) == s) {
                out.push(record);
            }
        }
        Ok(out)
    }

    async fn page(
        &self,
        filter: &PageFilter,
        now: OffsetDateTime,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM keys WHERE deleted_at IS NULL \
             AND ($1 = 1 OR (disabled_at IS NULL AND (revoked_at IS NULL OR revoked_at > $3))) \
             AND ($2 = 1 OR expires_at IS NULL OR expires_at > $3) \
             ORDER BY created_at DESC, {} DESC LIMIT $4 OFFSET $5",
            D::INSERT_ORDER
        );
        let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let rows = sqlx::query(&sql)
            .bind(i64::from(filter.include_disabled))
            .bind(i64::from(filter.include_expired))
            .bind(unix(now))
            .bind(clamp(filter.limit))
            .bind(clamp(filter.offset))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(Self::record_from_row).collect()
    }

    async fn update(
        &self,
        id: &str,
        update: &KeyUpdate,
        by: &str,
        at: OffsetDateTime,
    ) -> Result<UpdateOutcome, StoreError> {
        let sql = format!("{UPDATE_KEY} RETURNING {COLUMNS}");
        let row = sqlx::query(&sql)
            .bind(update.name.as_deref())
            .bind(i64::from(update.credit_limit.is_some()))
            .bind(update.credit_limit.flatten())
            .bind(i64::from(update.limit_reset.is_some()))
            .bind(update.limit_reset.flatten().map(|l| l.as_str()))
            .bind(update.include_byok_in_limit.map(i64::from))
            .bind(update.disabled.map(i64::from))
            .bind(unix(at))
            .bind(by)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        if let Some(row) = row {
            return Ok(UpdateOutcome::Updated(Self::record_from_row(&row)?));
        }
        Ok(match self.get(id).await? {
            Some(record) if record.deleted_at.is_none() => UpdateOutcome::Revoked(record),
            _ => UpdateOutcome::NotFound,
        })
    }

    async fn delete(&self, id: &str, reason: &str, at: OffsetDateTime) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        Self::revoke_in(&mut tx, id, reason, at).await?;
        let deleted = D::rows_affected(
            sqlx::query("UPDATE keys SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL")
                .bind(unix(at))
                .bind(id)
                .execute(&mut *tx)
                .await?,
        );
        tx.commit().await?;
        Ok(deleted == 1)
    }

    async fn revoke(
        &self,
        id: &str,
        reason: &str,
        at: OffsetDateTime,
    ) -> Result<Revocation, StoreError> {
        let mut tx = self.pool.begin().await?;
        let updated = Self::revoke_in(&mut tx, id, reason, at).await?;
        let sql = format!("SELECT {COLUMNS} FROM keys WHERE id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(&mut *tx).await?;
        tx.commit().await?;
        let record = match row {
            Some(row) => Self::record_from_row(&row)?,
            None => return Err(StoreError::NotFound(id.to_string())),
        };
        Ok(if updated {
            Revocation::Revoked(record)
        } else {
            Revocation::AlreadyRevoked(record)
        })
    }

    async fn rotate(
        &self,
        old_id: &str,
        new: &KeyRecord,
        revoke_old_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let reason = format!("rotated: replaced by {}", new.id);
        let updated = D::rows_affected(
            sqlx::query(
                "UPDATE keys SET revoked_at = $1, revocation_reason = $2, \
                     revocation_scheduled = $4 WHERE id = $3 AND revoked_at IS NULL \
                     AND disabled_at IS NULL AND deleted_at IS NULL \
                     AND (expires_at IS NULL OR expires_at > $5)",
            )
            .bind(unix(revoke_old_at))
            .bind(&reason)
            .bind(old_id)
            .bind(i64::from(revoke_old_at > new.created_at))
            .bind(unix(new.created_at))
            .execute(&mut *tx)
            .await?,
        );
        if updated != 1 {
            let exists = sqlx::query("SELECT id FROM keys WHERE id = $1")
                .bind(old_id)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            return Err(if exists {
                StoreError::NotRotatable {
                    id: old_id.to_string(),
                    reason: "it is revoked, disabled, expired or already being rotated".into(),
                }
            } else {
                StoreError::NotFound(old_id.to_string())
            });
        }
        sqlx::query(RECORD_REVOCATION)
            .bind(old_id)
            .bind(unix(revoke_old_at))
            .bind(&reason)
            .bind(unix(new.created_at))
            .execute(&mut *tx)
            .await?;
        Self::insert_in(&mut *tx, new).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn record_leaks(
        &self,
        reports: &[LeakReport],
        at: OffsetDateTime,
    ) -> Result<Vec<LeakOutcome>, StoreError> {
        let mut outcomes = vec![LeakOutcome::Unknown; reports.len()];
        // Which reports name our keys: a plain read, so a batch of
        // strangers' tokens never takes the write lock.
        let hexes: Vec<String> = reports.iter().map(|r| r.hash.to_hex()).collect();
        let mut known: std::collections::HashMap<String, String> = std::collections::HashMap::new();
        for chunk in hexes.chunks(LOOKUP_CHUNK) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|n| format!("${n}")).collect();
            let sql = format!(
                "SELECT id, key_hash FROM keys WHERE key_hash IN ({})",
                placeholders.join(", ")
            );
            let mut query = sqlx::query(&sql);
            for hex in chunk {
                query = query.bind(hex);
            }
            for row in query.fetch_all(&self.pool).await? {
                known.insert(row.try_get("key_hash")?, row.try_get("id")?);
            }
        }
        let ours: Vec<(usize, String)> = hexes
            .iter()
            .enumerate()
            .filter_map(|(i, hex)| known.get(hex).map(|id| (i, id.clone())))
            .collect();
        if ours.is_empty() {
            return Ok(outcomes);
        }
        // One lock order for every transaction: no deadlocks between
        // concurrent deliveries of overlapping batches.
        let mut ours = ours;
        ours.sort_by(|a, b| {
            reports[a.0]
                .hash
                .cmp(&reports[b.0].hash)
                .then(a.0.cmp(&b.0))
        });
        let mut tx = self.pool.begin().await?;
        for (i, key_id) in ours {
            let r = &reports[i];
            let revoked = sqlx::query(
                "UPDATE keys SET revoked_at = $1, revocation_reason = $2, \
                         revocation_scheduled = 0 WHERE key_hash = $3 AND (revoked_at IS NULL \
                         OR (revocation_scheduled = 1 AND revoked_at > $1)) \
                         RETURNING owner_email",
            )
            .bind(unix(at))
            .bind(&r.reporter)
            .bind(r.hash.to_hex())
            .fetch_optional(&mut *tx)
            .await?;
            let kind = if revoked.is_some() {
                "revoked"
            } else {
                "sighting"
            };
            let incident: i64 = sqlx::query(
                "INSERT INTO incidents (key_id, kind, reporter, token_type, url, source, \
                         request_id, reported_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                         RETURNING id",
            )
            .bind(&key_id)
            .bind(kind)
            .bind(&r.reporter)
            .bind(&r.token_type)
            .bind(&r.url)
            .bind(&r.source)
            .bind(&r.request_id)
            .bind(unix(at))
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
            let Some(row) = revoked else {
                outcomes[i] = LeakOutcome::AlreadyRevoked { key_id };
                continue;
            };
            let owner_email: String = row.try_get(0)?;
            sqlx::query(RECORD_REVOCATION)
                .bind(&key_id)
                .bind(unix(at))
                .bind(&r.reporter)
                .bind(unix(at))
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO outbox (key_id, incident_id, kind, recipient, next_attempt_at, \
                         created_at) VALUES ($1, $2, 'key-revoked', $3, $4, $4) \
                         ON CONFLICT (key_id, kind, channel, dedup) DO NOTHING",
            )
            .bind(&key_id)
            .bind(incident)
            .bind(&owner_email)
            .bind(unix(at))
            .execute(&mut *tx)
            .await?;
            outcomes[i] = LeakOutcome::Revoked { key_id };
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    async fn outbox_depth(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) FROM outbox WHERE state = 'pending'")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }

    async fn claim_outbox(
        &self,
        worker: &str,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: i64,
    ) -> Result<Vec<OutboxEmail>, StoreError> {
        let ids: Vec<i64> = sqlx::query(D::CLAIM)
            .bind(worker)
            .bind(unix(lease_until))
            .bind(unix(now))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        let mut emails = Vec::with_capacity(ids.len());
        for id in ids {
            let row = sqlx::query(
                "SELECT o.kind, o.recipient, o.attempts, o.key_id, o.channel, o.evidence, \
                         i.url, COALESCE(i.source, '') AS source, \
                         COALESCE(i.reporter, '') AS reporter, \
                         COALESCE(i.reported_at, o.created_at) AS reported_at FROM outbox o \
                         LEFT JOIN incidents i ON i.id = o.incident_id WHERE o.id = $1",
            )
            .bind(id)
            .fetch_one(&self.pool)
            .await?;
            let key_id: String = row.try_get("key_id")?;
            let key = self
                .get(&key_id)
                .await?
                .ok_or_else(|| corrupt(&key_id, "outbox row names a missing key"))?;
            emails.push(OutboxEmail {
                id,
                kind: row.try_get("kind")?,
                recipient: row.try_get("recipient")?,
                attempts: row.try_get("attempts")?,
                url: row.try_get("url")?,
                source: row.try_get("source")?,
                reporter: row.try_get("reporter")?,
                reported_at: timestamp(&key_id, row.try_get("reported_at")?)?,
                evidence: None,
                channel: row.try_get("channel")?,
                alert: row
                    .try_get::<Option<String>, _>("evidence")?
                    .map(|json| {
                        serde_json::from_str(&json)
                            .map_err(|e| corrupt(&key_id, format!("outbox evidence: {e}")))
                    })
                    .transpose()?,
                key,
            });
            let email = emails.last_mut().expect("just pushed");
            if email.kind == STILL_IN_USE
                && let Some(revoked) = email.key.revoked_at
            {
                email.evidence = Some(self.usage_summary(&email.key.id, revoked, true).await?);
            }
        }
        Ok(emails)
    }

    async fn finish_outbox(
        &self,
        id: i64,
        worker: &str,
        outcome: &AttemptOutcome,
        error: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let next = match outcome {
            AttemptOutcome::Retry(at) => unix(*at),
            _ => unix(now),
        };
        let sent_at = matches!(outcome, AttemptOutcome::Sent).then(|| unix(now));
        let mut tx = self.pool.begin().await?;
        let updated = D::rows_affected(
            sqlx::query(
                "UPDATE outbox SET state = $1, next_attempt_at = $2, \
                     last_error = COALESCE($3, last_error), sent_at = $4, claimed_by = NULL, \
                     lease_until = NULL WHERE id = $5 AND claimed_by = $6 AND state = 'pending'",
            )
            .bind(outcome_state(outcome))
            .bind(next)
            .bind(error)
            .bind(sent_at)
            .bind(id)
            .bind(worker)
            .execute(&mut *tx)
            .await?,
        );
        sqlx::query(
            "INSERT INTO outbox_attempts (outbox_id, attempt, worker, finished_at, \
                     outcome, error) VALUES ($1, (SELECT attempts FROM outbox WHERE id = $1), \
                     $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(worker)
        .bind(unix(now))
        .bind(if updated == 1 {
            outcome_state(outcome)
        } else {
            "lease-lost"
        })
        .bind(error)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(updated == 1)
    }

    async fn list_outbox(&self, state: Option<&str>) -> Result<Vec<OutboxRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, key_id, kind, recipient, state, attempts, next_attempt_at, \
                     last_error, created_at, sent_at FROM outbox \
                     WHERE ($1 IS NULL OR state = $1) ORDER BY id DESC",
        )
        .bind(state)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let id: i64 = row.try_get("id")?;
            let key_id: String = row.try_get("key_id")?;
            let errors = sqlx::query(
                "SELECT error FROM outbox_attempts WHERE outbox_id = $1 \
                         AND error IS NOT NULL ORDER BY id",
            )
            .bind(id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<Vec<String>, _>>()?;
            let sent: Option<i64> = row.try_get("sent_at")?;
            out.push(OutboxRow {
                id,
                kind: row.try_get("kind")?,
                recipient: row.try_get("recipient")?,
                state: row.try_get("state")?,
                attempts: row.try_get("attempts")?,
                next_attempt_at: timestamp(&key_id, row.try_get("next_attempt_at")?)?,
                last_error: row.try_get("last_error")?,
                created_at: timestamp(&key_id, row.try_get("created_at")?)?,
                sent_at: sent.map(|s| timestamp(&key_id, s)).transpose()?,
                errors,
                key_id,
            });
        }
        Ok(out)
    }

    async fn retry_outbox(&self, id: i64, now: OffsetDateTime) -> Result<bool, StoreError> {
        let updated = D::rows_affected(
            sqlx::query(
                "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = $1, \
                     claimed_by = NULL, lease_until = NULL WHERE id = $2 AND state <> 'sent'",
            )
            .bind(unix(now))
            .bind(id)
            .execute(&self.pool)
            .await?,
        );
        Ok(updated == 1)
    }

    async fn outbox_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query("SELECT state, COUNT(*) FROM outbox GROUP BY state")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    async fn touch(&self, id: &str, at: OffsetDateTime) -> Result<(), StoreError> {
        sqlx::query("UPDATE keys SET last_used_at = $1 WHERE id = $2")
            .bind(unix(at))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn claim_rates(&self, claims: &[RateClaim]) -> Result<Vec<RateGrant>, StoreError> {
        let sql = D::RATE_CLAIM.ok_or(StoreError::SharedRatesUnsupported(D::BACKEND))?;
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        let json =
            serde_json::to_string(claims).map_err(|e| StoreError::TaskFailed(e.to_string()))?;
        let rows = sqlx::query(sql).bind(json).fetch_all(&self.pool).await?;
        let count = |row: &<D::Db as Database>::Row, i: usize| -> Result<u32, StoreError> {
            let n: i64 = row.try_get(i)?;
            Ok(u32::try_from(n.max(0)).unwrap_or(u32::MAX))
        };
        rows.iter()
            .map(|row| {
                let room_ms: Option<i64> = row.try_get(4)?;
                Ok(RateGrant {
                    key_id: row.try_get(0)?,
                    granted: count(row, 1)?,
                    slot: row.try_get(2)?,
                    used: count(row, 3)?,
                    room_in: room_ms.map(|ms| Duration::from_millis(ms.max(0).unsigned_abs())),
                })
            })
            .collect()
    }

    async fn prune_rates(&self) -> Result<(), StoreError> {
        let sql = D::RATE_PRUNE.ok_or(StoreError::SharedRatesUnsupported(D::BACKEND))?;
        sqlx::query(sql).execute(&self.pool).await?;
        Ok(())
    }

    async fn record_usage(&self, rows: &[UsageRow]) -> Result<(), StoreError> {
        #[derive(serde::Serialize)]
        struct Row<'a> {
            k: Option<&'a str>,
            h: Option<String>,
            t: i64,
            ip: Option<String>,
            n: Option<String>,
            o: &'static str,
            ua: Option<&'a str>,
            c: u32,
            s: i64,
        }
        let rows: Vec<Row<'_>> = rows
            .iter()
            .map(|row| {
                let r = &row.first;
                let t = unix_ms(r.at);
                Row {
                    k: r.key_id.as_deref(),
                    h: r.unknown_hash.as_ref().map(KeyHash::to_hex),
                    t,
                    ip: r.ip.map(|ip| ip.to_string()),
                    n: r.ip.map(network_of),
                    o: r.outcome.as_str(),
                    ua: r.user_agent.as_deref(),
                    c: row.requests.max(1),
                    // Within the row's second; never negative.
                    s: (unix_ms(row.last) - t).clamp(0, 999),
                }
            })
            .collect();
        let json =
            serde_json::to_string(&rows).map_err(|e| StoreError::TaskFailed(e.to_string()))?;
        // The hourly counts, summed here: a batch is mostly a few keys.
        #[derive(serde::Serialize)]
        struct Count<'a> {
            k: &'a str,
            h: i64,
            n: &'a str,
            c: i64,
        }
        let mut counts: std::collections::BTreeMap<(&str, i64, &str), i64> = Default::default();
        for row in &rows {
            if let Some(k) = row.k {
                let hour = row.t - row.t.rem_euclid(3_600_000);
                *counts
                    .entry((k, hour, row.n.as_deref().unwrap_or("unknown")))
                    .or_default() += i64::from(row.c);
            }
        }
        let counts: Vec<Count<'_>> = counts
            .into_iter()
            .map(|((k, h, n), c)| Count { k, h, n, c })
            .collect();
        let counts =
            serde_json::to_string(&counts).map_err(|e| StoreError::TaskFailed(e.to_string()))?;
        let mut tx = self.pool.begin().await?;
        sqlx::query(D::USAGE_INSERT)
            .bind(&json)
            .execute(&mut *tx)
            .await?;
        sqlx::query(D::USAGE_ROLLUP)
            .bind(&counts)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn prune_usage(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM key_usage WHERE at_ms < $1")
            .bind(unix_ms(before))
            .execute(&self.pool)
            .await?;
        // An hour is kept while any of it is.
        sqlx::query("DELETE FROM key_usage_hourly WHERE hour_ms < $1")
            .bind(unix_ms(hour_of(before)))
            .execute(&self.pool)
            .await?;
        Ok(D::rows_affected(done))
    }

    async fn usage_summary(
        &self,
        id: &str,
        since: OffsetDateTime,
        refused_only: bool,
    ) -> Result<UsageSummary, StoreError> {
        let which = if refused_only {
            "key_id = $1 AND at_ms >= $2 AND outcome NOT IN ('ok', 'rate-limited')"
        } else {
            "key_id = $1 AND at_ms >= $2"
        };
        let counts = |rows: Vec<<D::Db as Database>::Row>| -> Result<Vec<UsageCount>, StoreError> {
            rows.iter()
                .map(|row| {
                    Ok(UsageCount {
                        name: row.try_get(0)?,
                        requests: row.try_get(1)?,
                        first: from_unix_ms(row.try_get(2)?)?,
                        last: from_unix_ms(row.try_get(3)?)?,
                    })
                })
                .collect()
        };
        let by_outcome = sqlx::query(&format!(
            "SELECT outcome, CAST(SUM(requests) AS BIGINT) AS n, MIN(at_ms), \
             MAX(at_ms + span_ms) FROM key_usage \
             WHERE {which} GROUP BY outcome ORDER BY n DESC, outcome"
        ))
        .bind(id)
        .bind(unix_ms(since))
        .fetch_all(&self.pool)
        .await?;
        let by_network = sqlx::query(&format!(
            "SELECT COALESCE(network, 'unknown') AS net, CAST(SUM(requests) AS BIGINT) AS n, \
             MIN(at_ms), MAX(at_ms + span_ms) FROM key_usage WHERE {which} \
             GROUP BY COALESCE(network, 'unknown') ORDER BY n DESC, net LIMIT $3"
        ))
        .bind(id)
        .bind(unix_ms(since))
        .bind(MAX_NETWORKS)
        .fetch_all(&self.pool)
        .await?;
        let networks: i64 = sqlx::query(&format!(
            "SELECT COUNT(DISTINCT COALESCE(network, 'unknown')) FROM key_usage WHERE {which}"
        ))
        .bind(id)
        .bind(unix_ms(since))
        .fetch_one(&self.pool)
        .await?
        .try_get(0)?;
        Ok(UsageSummary::from_counts(
            counts(by_outcome)?,
            counts(by_network)?,
            networks,
        ))
    }

    async fn incidents(&self, key_id: Option<&str>) -> Result<Vec<Incident>, StoreError> {
        let sql = format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE ($1 IS NULL OR key_id = $1) \
             ORDER BY reported_at DESC, id DESC LIMIT 1000"
        );
        let rows = sqlx::query(&sql).bind(key_id).fetch_all(&self.pool).await?;
        rows.iter().map(Self::incident_from_row).collect()
    }

    async fn queue_alert(&self, alert: &NewAlert<'_>) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let Some(row) = sqlx::query("SELECT owner_email FROM keys WHERE id = $1")
            .bind(alert.key_id)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(false);
        };
        let owner: String = row.try_get(0)?;
        // A still-in-use alert belongs to the leak that revoked the key.
        let incident: Option<i64> = if alert.kind == STILL_IN_USE {
            let found = sqlx::query(
                "SELECT id FROM incidents WHERE key_id = $1 AND kind = 'revoked' \
                 ORDER BY id DESC LIMIT 1",
            )
            .bind(alert.key_id)
            .fetch_optional(&mut *tx)
            .await?;
            match found {
                Some(row) => Some(row.try_get(0)?),
                None => return Ok(false),
            }
        } else {
            None
        };
        let evidence = alert
            .evidence
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StoreError::TaskFailed(e.to_string()))?;
        let mut queued = 0;
        let channels = std::iter::once(("email", owner.as_str()))
            .chain(alert.webhook.map(|url| ("webhook", url)));
        for (channel, recipient) in channels {
            let done = D::rows_affected(
                sqlx::query(
                    "INSERT INTO outbox (key_id, incident_id, kind, recipient, next_attempt_at, \
                     created_at, channel, dedup, evidence) \
                     VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8) \
                     ON CONFLICT (key_id, kind, channel, dedup) DO NOTHING",
                )
                .bind(alert.key_id)
                .bind(incident)
                .bind(alert.kind)
                .bind(recipient)
                .bind(unix(alert.at))
                .bind(channel)
                .bind(alert.dedup)
                .bind(evidence.as_deref())
                .execute(&mut *tx)
                .await?,
            );
            if channel == "email" {
                queued = done;
            }
        }
        tx.commit().await?;
        Ok(queued == 1)
    }

    async fn key_history(&self, id: &str, now: OffsetDateTime) -> Result<KeyHistory, StoreError> {
        let hour = hour_of(now);
        let trailing_from = hour - time::Duration::days(7);
        let trailing_until = hour - time::Duration::hours(1);
        let rows = sqlx::query(
            "SELECT network, MIN(hour_ms), CAST(SUM(requests) AS BIGINT) FROM key_usage_hourly \
             WHERE key_id = $1 GROUP BY network ORDER BY 3 DESC, network LIMIT $2",
        )
        .bind(id)
        .bind(MAX_NETWORKS)
        .fetch_all(&self.pool)
        .await?;
        let networks = rows
            .iter()
            .map(|row| {
                Ok(NetworkHistory {
                    network: row.try_get(0)?,
                    since: from_unix_ms(row.try_get(1)?)?,
                    requests: row.try_get(2)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let trailing = sqlx::query(
            "SELECT CAST(COALESCE(SUM(requests), 0) AS BIGINT) FROM key_usage_hourly \
             WHERE key_id = $1 AND hour_ms >= $2 AND hour_ms < $3",
        )
        .bind(id)
        .bind(unix_ms(trailing_from))
        .bind(unix_ms(trailing_until))
        .fetch_one(&self.pool)
        .await?;
        let recent = sqlx::query(
            "SELECT CAST(COALESCE(SUM(requests), 0) AS BIGINT) FROM key_usage \
                 WHERE key_id = $1 AND at_ms >= $2",
        )
        .bind(id)
        .bind(unix_ms(now - time::Duration::minutes(5)))
        .fetch_one(&self.pool)
        .await?;
        Ok(KeyHistory {
            networks,
            trailing_requests: trailing.try_get(0)?,
            trailing_from,
            trailing_until,
            recent_requests: recent.try_get(0)?,
        })
    }

    async fn incident(&self, id: i64) -> Result<Option<Incident>, StoreError> {
        let sql = format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(Self::incident_from_row).transpose()
    }
}

impl SqlStore<Sqlite> {
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|_| StoreError::UnsupportedUrl(redact_url(url)))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            // Reads through a map, not a copy per page: every usage-log
            // write ends each reader connection's page cache (WAL), and
            // re-reading costs less this way (BENCHMARKS.md, issue 17).
            .pragma("mmap_size", "268435456");
        let file = options.get_filename().to_path_buf();
        create_private_file(&file)?;
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .map_err(|e| sqlite_open_error(&file, e))?;
        Self::migrate(&pool).await?;
        Ok(SqlStore { pool })
    }
}

/// Why SQLite could not open `file`, in words: its own message without
/// sqlx's wrapping, and what its "cannot open" usually means.
fn sqlite_open_error(file: &std::path::Path, error: sqlx::Error) -> StoreError {
    let sqlx::Error::Database(db) = &error else {
        return error.into();
    };
    let mut reason = db.message().to_string();
    // SQLITE_CANTOPEN (14), as a primary or extended code.
    if db
        .code()
        .and_then(|c| c.parse::<u32>().ok())
        .is_some_and(|c| c & 0xff == 14)
    {
        reason.push_str(" (a directory, or a file whose directory is missing or not writable)");
    }
    StoreError::Open {
        what: format!("SQLite database {}", file.display()),
        reason,
    }
}

/// Creates the database file readable by its owner only, before SQLite
/// creates it with the umask's permissions.
fn create_private_file(path: &std::path::Path) -> Result<(), StoreError> {
    if path.as_os_str().is_empty() || path.as_os_str() == ":memory:" || path.exists() {
        return Ok(());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(StoreError::CreateFile {
            path: path.display().to_string(),
            source,
        }),
    }
}

impl SqlStore<Postgres> {
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|_| StoreError::UnsupportedUrl(redact_url(url)))?;
        let shown = format!("PostgreSQL at {}", redact_url(url));
        // One connection first, to say at once why the server cannot be
        // used ("connection refused", a wrong password, no such database):
        // the pool would only say that it timed out, after its timeout.
        match tokio::time::timeout(
            POSTGRES_CONNECT_TIMEOUT,
            PgConnection::connect_with(&options),
        )
        .await
        {
            Err(_) => {
                return Err(StoreError::Unreachable {
                    what: shown,
                    reason: format!("no answer within {POSTGRES_CONNECT_TIMEOUT:?}"),
                });
            }
            Ok(Err(e)) => return Err(connect_error(shown, &e)),
            Ok(Ok(conn)) => {
                let _ = conn.close().await;
            }
        }
        // A request waits at most this long for a connection: when the
        // server is down, callers get "unavailable" (503, GitHub retries)
        // within GitHub's delivery timeout rather than hanging.
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(3))
            .connect_with(options)
            .await?;
        Self::migrate(&pool).await?;
        Ok(SqlStore { pool })
    }
}

/// How long `open` waits for PostgreSQL's first connection.
const POSTGRES_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A failed first connection to `what`, in words without sqlx's wrapping:
/// unreachable (the network, TLS) or refused by the server (a wrong
/// password, no such database).
fn connect_error(what: String, error: &sqlx::Error) -> StoreError {
    use std::io::ErrorKind;
    let reason = match error {
        sqlx::Error::Io(io) => match io.kind() {
            ErrorKind::ConnectionRefused => "connection refused".into(),
            ErrorKind::TimedOut => "connection timed out".into(),
            ErrorKind::HostUnreachable => "host unreachable".into(),
            ErrorKind::NetworkUnreachable => "network unreachable".into(),
            _ => io.to_string(),
        },
        sqlx::Error::Tls(tls) => format!("TLS: {tls}"),
        sqlx::Error::Database(db) => {
            return StoreError::Open {
                what,
                reason: db.message().to_string(),
            };
        }
        other => {
            return StoreError::Open {
                what,
                reason: other.to_string(),
            };
        }
    };
    StoreError::Unreachable { what, reason }
}
