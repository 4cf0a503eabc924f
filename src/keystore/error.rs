//! Errors of the key store.

use thiserror::Error;

/// What went wrong in the key store.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("unsupported database URL {0:?}: use sqlite://FILE or postgres://…")]
    UnsupportedUrl(String),
    #[error(
        "no key store at {0}: create a key first (keywarden keys create) or pass --database-url"
    )]
    NoStore(String),
    #[error("cannot create database file {path}: {source}")]
    CreateFile {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "database schema version {found} is newer than this keywarden knows ({known}); upgrade keywarden"
    )]
    SchemaTooNew { found: i64, known: i64 },
    #[error("cannot open {what}: {reason}")]
    Open { what: String, reason: String },
    #[error("cannot reach {what}: {reason}")]
    Unreachable { what: String, reason: String },
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("no key with id {0:?}")]
    NotFound(String),
    #[error("a key with this hash is already in the store (id {0})")]
    Duplicate(String),
    #[error("key {id} cannot be rotated: {reason}")]
    NotRotatable { id: String, reason: String },
    #[error("corrupt key record {id}: {reason}")]
    Corrupt { id: String, reason: String },
    #[error("the operating system's random generator failed: {0}")]
    Random(String),
    #[error(transparent)]
    Spec(#[from] super::model::SpecError),
    #[error("import line {line}: {reason}")]
    Import { line: usize, reason: String },
    #[error("the key store did not answer within {0:?}")]
    TimedOut(std::time::Duration),
    #[error("a key store call failed: {0}")]
    TaskFailed(String),
    #[error("the {0} store keeps no shared rate counts; shared rate limits need PostgreSQL")]
    SharedRatesUnsupported(&'static str),
}

impl StoreError {
    /// True when the store itself could not be reached (as opposed to a bad
    /// request): callers answer "try again later" rather than "no".
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::TimedOut(_)
                | StoreError::Unreachable { .. }
                | StoreError::Database(
                    sqlx::Error::Io(_)
                        | sqlx::Error::PoolTimedOut
                        | sqlx::Error::PoolClosed
                        | sqlx::Error::WorkerCrashed
                        | sqlx::Error::Tls(_)
                )
        )
    }
}
