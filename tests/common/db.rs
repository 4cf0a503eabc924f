//! Real databases for tests: a SQLite file in a temp dir, or a private
//! schema on the PostgreSQL server named by `KEYWARDEN_TEST_POSTGRES_URL`
//! (default: this machine's `postgres://postgres@127.0.0.1:5432/test`).
//! Each `TestDb` is its own database, so tests run in parallel.

use sqlx::Connection;
use std::sync::atomic::{AtomicU64, Ordering};

pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

pub fn postgres_base_url() -> String {
    std::env::var("KEYWARDEN_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.into())
}

pub enum TestDb {
    Sqlite { dir: tempfile::TempDir, url: String },
    Postgres { schema: String, url: String },
}

impl TestDb {
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("keywarden.db").display());
        TestDb::Sqlite { dir, url }
    }

    /// A fresh schema on the test PostgreSQL server; fails loudly when no
    /// server answers (CI always has one: `.ci/run` starts it).
    pub async fn postgres() -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let schema = format!(
            "kwtest_{}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        let base = postgres_base_url();
        let mut conn = sqlx::PgConnection::connect(&base)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL at {base} is not reachable ({e}); start it or set \
                 KEYWARDEN_TEST_POSTGRES_URL (.ci/run does both)"
                )
            });
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut conn)
            .await
            .unwrap();
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options[search_path]={schema}");
        TestDb::Postgres { schema, url }
    }

    pub fn url(&self) -> &str {
        match self {
            TestDb::Sqlite { url, .. } | TestDb::Postgres { url, .. } => url,
        }
    }

    pub fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        match self {
            TestDb::Sqlite { dir, .. } => Some(dir.path().join("keywarden.db")),
            TestDb::Postgres { .. } => None,
        }
    }

    /// Runs one SQL statement directly (not through keywarden).
    pub async fn exec(&self, sql: &str) {
        match self {
            TestDb::Sqlite { url, .. } => {
                let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
                sqlx::query(sql).execute(&mut c).await.unwrap();
            }
            TestDb::Postgres { url, .. } => {
                let mut c = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::query(sql).execute(&mut c).await.unwrap();
            }
        }
    }

    /// The first column of every row of `sql`, as integers.
    pub async fn query_i64(&self, sql: &str) -> Vec<i64> {
        use sqlx::Row;
        match self {
            TestDb::Sqlite { url, .. } => {
                let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
                let rows = sqlx::query(sql).fetch_all(&mut c).await.unwrap();
                rows.iter().map(|r| r.get::<i64, _>(0)).collect()
            }
            TestDb::Postgres { url, .. } => {
                let mut c = sqlx::PgConnection::connect(url).await.unwrap();
                let rows = sqlx::query(sql).fetch_all(&mut c).await.unwrap();
                rows.iter().map(|r| r.get::<i64, _>(0)).collect()
            }
        }
    }

    /// Everything the store holds, as text: the SQLite files' raw bytes, or
    /// every row of every table in the PostgreSQL schema.
    pub async fn raw_contents(&self) -> String {
        match self {
            TestDb::Sqlite { dir, .. } => {
                let mut all = Vec::new();
                for entry in std::fs::read_dir(dir.path()).unwrap() {
                    all.extend(std::fs::read(entry.unwrap().path()).unwrap());
                }
                String::from_utf8_lossy(&all).into_owned()
            }
            TestDb::Postgres { url, schema } => {
                use sqlx::Row;
                let mut c = sqlx::PgConnection::connect(url).await.unwrap();
                let tables: Vec<String> = sqlx::query(
                    "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1",
                )
                .bind(schema)
                .fetch_all(&mut c)
                .await
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
                let mut out = String::new();
                for t in tables {
                    let rows = sqlx::query(&format!("SELECT t::text FROM {schema}.{t} t"))
                        .fetch_all(&mut c)
                        .await
                        .unwrap();
                    for r in rows {
                        out.push_str(&r.get::<String, _>(0));
                        out.push('\n');
                    }
                }
                out
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::Postgres { schema, .. } = self {
            let sql = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
            // Drop may run inside a tokio runtime: use a thread of our own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    if let Ok(mut c) = sqlx::PgConnection::connect(&postgres_base_url()).await {
                        let _ = sqlx::query(&sql).execute(&mut c).await;
                    }
                });
            })
            .join();
        }
    }
}
