//! Early warnings from the usage log of a real `keywarden serve`, on both
//! stores: a key used from a network it has never been used from, and a
//! spike over its usual rate — each alert once, by email to the owner and
//! to a webhook signed with HMAC-SHA256, naming its evidence and never the
//! key.

#[macro_use]
mod common;

use common::db::TestDb;
use common::server::{Server, get};
use common::{create_key, eventually};
use keywarden::keystore::{UsageOutcome, UsageRecord, UsageRow, open_store};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;

const PROXY: &str = "127.0.0.1/32";
const SECRET: &str = "webhook-secret-for-tests-0123456789";

fn check_from(server: &Server, key: &str, client: &str) -> u16 {
    get(
        &server.url("/api/v1/key"),
        &[
            ("Authorization", &format!("Bearer {key}")),
            ("X-Forwarded-For", client),
        ],
    )
    .status
}

fn make(db: &TestDb, name: &str) -> (String, String) {
    let (key, record) = create_key(db.url(), &["--owner", "owner@example.com", "--name", name]);
    (key, record["id"].as_str().unwrap().to_string())
}

/// Writes `count` admitted checks of key `id` from `ip`, spread evenly
/// from `from` to `to` ago, through the store's own usage-log write: the
/// history an older deployment would have.
async fn seed_history(db: &TestDb, id: &str, ip: &str, count: i64, from: Duration, to: Duration) {
    let store = open_store(db.url()).await.unwrap();
    let now = OffsetDateTime::now_utc();
    let step = (from - to) / u32::try_from(count).unwrap();
    let records: Vec<UsageRow> = (0..count)
        .map(|i| UsageRecord {
            key_id: Some(id.to_string()),
            unknown_hash: None,
            at: now - from + step * u32::try_from(i).unwrap(),
            ip: Some(ip.parse().unwrap()),
            outcome: UsageOutcome::Ok,
            user_agent: Some("app/1.0".into()),
        })
        .map(UsageRow::from)
        .collect();
    store.record_usage(&records).await.unwrap();
}

/// One request a webhook receiver got.
#[derive(Debug, Clone)]
struct Hook {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Hook {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// Whether the signature checks out as the README tells receivers to
    /// check it: HMAC-SHA256 over `TIMESTAMP.BODY` with the shared secret.
    fn signed_with(&self, secret: &str) -> bool {
        let (Some(stamp), Some(sig)) = (
            self.header("X-Keywarden-Timestamp"),
            self.header("X-Keywarden-Signature-256"),
        ) else {
            return false;
        };
        let Some(hex_sig) = sig.strip_prefix("sha256=") else {
            return false;
        };
        let Ok(raw) = hex::decode(hex_sig) else {
            return false;
        };
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
        let mut signed = format!("{stamp}.").into_bytes();
        signed.extend_from_slice(&self.body);
        ring::hmac::verify(&key, &signed, &raw).is_ok()
    }
}

/// A webhook receiver on a loopback port: answers `statuses` in turn (200
/// once they run out) and keeps every request.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Hook>>>,
}

impl Receiver {
    fn start(statuses: Vec<u16>) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hooks/keywarden", listener.local_addr().unwrap());
        let got = Arc::new(Mutex::new(Vec::new()));
        let seen = got.clone();
        std::thread::spawn(move || {
            let mut statuses = statuses.into_iter();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() || !line.starts_with("POST /hooks/") {
                    continue;
                }
                let mut headers = Vec::new();
                loop {
                    let mut h = String::new();
                    reader.read_line(&mut h).unwrap();
                    let h = h.trim_end();
                    if h.is_empty() {
                        break;
                    }
                    let (n, v) = h.split_once(':').unwrap();
                    headers.push((n.trim().to_string(), v.trim().to_string()));
                }
                let len: usize = headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                    .map(|(_, v)| v.parse().unwrap())
                    .unwrap_or(0);
                let mut body = vec![0; len];
                reader.read_exact(&mut body).unwrap();
                seen.lock().unwrap().push(Hook { headers, body });
                let status = statuses.next().unwrap_or(200);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                );
            }
        });
        Receiver { url, got }
    }

    fn hooks(&self) -> Vec<Hook> {
        self.got.lock().unwrap().clone()
    }
}

fn serve(db: &TestDb, hook: &Receiver, extra: &[&str]) -> Server {
    let mut args = vec![
        "--trusted-proxy",
        PROXY,
        "--alert-webhook",
        &hook.url,
        "--retry-base",
        "1s",
    ];
    args.extend_from_slice(extra);
    Server::start_with_env(
        db.url(),
        &args,
        &[("KEYWARDEN_ALERT_WEBHOOK_SECRET", SECRET)],
    )
}

/// The `.eml` files written so far, soft line breaks undone.
fn emails(server: &Server) -> Vec<String> {
    std::fs::read_dir(server.mail_dir.path())
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .map(|e| e.replace("=\r\n", ""))
        .collect()
}

async fn alerts_of(db: &TestDb, id: &str, kind: &str, channel: &str) -> i64 {
    db.query_i64(&format!(
        "SELECT COUNT(*) FROM outbox WHERE key_id = '{id}' AND kind = '{kind}' \
         AND channel = '{channel}'"
    ))
    .await[0]
}

async fn a_key_used_from_a_new_network_alerts_its_owner_once(db: TestDb) {
    let day = Duration::from_secs(86_400);
    let (key, id) = make(&db, "billing-service");
    // Eight days of use from the owner's own network.
    seed_history(&db, &id, "192.0.2.10", 300, day * 8, day / 4).await;
    // A key without a settled history: two days old.
    let (young, young_id) = make(&db, "new-service");
    seed_history(&db, &young_id, "192.0.2.20", 300, day * 2, day / 4).await;
    let hook = Receiver::start(vec![503]);
    let server = serve(&db, &hook, &[]);
    for _ in 0..5 {
        assert_eq!(check_from(&server, &key, "192.0.2.77"), 200);
        assert_eq!(check_from(&server, &young, "192.0.2.20"), 200);
    }
    // Somewhere new: a network the key has never been used from.
    for client in ["203.0.113.5", "203.0.113.5", "203.0.113.77"] {
        assert_eq!(check_from(&server, &key, client), 200);
        assert_eq!(check_from(&server, &young, client), 200);
    }
    eventually(
        "the new network is alerted",
        Duration::from_secs(15),
        || {
            emails(&server)
                .iter()
                .any(|e| e.contains("used from a new network"))
        },
    );
    // And a second new network, over IPv6.
    assert_eq!(check_from(&server, &key, "2001:db8:77:1::9"), 200);
    eventually(
        "the second network is alerted",
        Duration::from_secs(15),
        || {
            emails(&server)
                .iter()
                .filter(|e| e.contains("used from a new network"))
                .count()
                == 2
        },
    );
    // Each network once, whatever more requests come from it.
    for _ in 0..5 {
        assert_eq!(check_from(&server, &key, "203.0.113.200"), 200);
        assert_eq!(check_from(&server, &key, "2001:db8:77:2::1"), 200);
    }
    eventually(
        "both webhooks are delivered",
        Duration::from_secs(20),
        || {
            hook.hooks()
                .iter()
                .filter(|h| h.json()["alert"] == "new-network")
                .count()
                >= 3
        },
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(alerts_of(&db, &id, "key-new-network", "email").await, 2);
    assert_eq!(alerts_of(&db, &id, "key-new-network", "webhook").await, 2);
    // The young key has no settled history: no alert, whatever it does.
    assert_eq!(
        alerts_of(&db, &young_id, "key-new-network", "email").await,
        0
    );

    let mail: Vec<String> = emails(&server)
        .into_iter()
        .filter(|e| e.contains("used from a new network"))
        .collect();
    assert_eq!(mail.len(), 2, "{mail:?}");
    assert!(
        mail.iter().any(|e| e.contains("203.0.113.0/24")),
        "{mail:?}"
    );
    assert!(
        mail.iter().any(|e| e.contains("2001:db8:77::/48")),
        "{mail:?}"
    );
    // The evidence: the networks it is usually used from.
    assert!(mail.iter().all(|e| e.contains("192.0.2.0/24")), "{mail:?}");
    assert!(
        mail.iter().all(|e| e.contains("billing-service")),
        "{mail:?}"
    );
    for e in emails(&server) {
        assert!(!e.contains(&key), "an email holds the key");
    }

    // The webhook: refused once (503), delivered on the retry; every
    // delivery signed, none holding the key.
    let hooks = hook.hooks();
    let delivered: Vec<&Hook> = hooks
        .iter()
        .filter(|h| h.json()["alert"] == "new-network")
        .collect();
    assert_eq!(delivered.len(), 3, "one refused, two delivered: {hooks:?}");
    for h in &hooks {
        assert!(h.signed_with(SECRET), "bad signature: {h:?}");
        assert!(!h.signed_with("another secret"));
        assert_eq!(h.header("Content-Type"), Some("application/json"));
        assert!(!String::from_utf8_lossy(&h.body).contains(&key));
    }
    let networks: std::collections::BTreeSet<String> = delivered
        .iter()
        .map(|h| {
            h.json()["evidence"]["network"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        networks.into_iter().collect::<Vec<_>>(),
        ["2001:db8:77::/48", "203.0.113.0/24"]
    );
    let first = delivered[0].json();
    assert_eq!(first["key"]["id"], id.as_str());
    assert_eq!(first["key"]["name"], "billing-service");
    assert_eq!(
        first["evidence"]["usual_networks"][0]["network"],
        "192.0.2.0/24"
    );
    // A signature on a changed body fails.
    let mut forged = delivered[0].clone();
    forged.body = String::from_utf8(forged.body)
        .unwrap()
        .replace("new-network", "old-network")
        .into_bytes();
    assert!(!forged.signed_with(SECRET));

    let metrics = get(&server.admin_url("/metrics"), &[]).body;
    assert!(
        metrics.contains("keywarden_alerts_total{kind=\"new_network\"} 2"),
        "{metrics}"
    );
}

async fn a_spike_over_the_usual_rate_alerts_once(db: TestDb) {
    let day = Duration::from_secs(86_400);
    let (key, id) = make(&db, "steady");
    // A week at about two requests an hour.
    seed_history(
        &db,
        &id,
        "192.0.2.10",
        336,
        day * 7,
        Duration::from_secs(7200),
    )
    .await;
    let (young, young_id) = make(&db, "fresh");
    let hook = Receiver::start(vec![]);
    let server = serve(&db, &hook, &[]);
    // A few requests at the usual pace: no alert.
    for _ in 0..3 {
        assert_eq!(check_from(&server, &key, "192.0.2.10"), 200);
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(alerts_of(&db, &id, "key-usage-spike", "email").await, 0);
    // Then 150 in a few seconds, from the key's own network.
    for _ in 0..150 {
        assert_eq!(check_from(&server, &key, "192.0.2.10"), 200);
        assert_eq!(check_from(&server, &young, "192.0.2.30"), 200);
    }
    eventually("the spike is alerted", Duration::from_secs(15), || {
        emails(&server).iter().any(|e| e.contains("sudden spike"))
    });
    for _ in 0..100 {
        assert_eq!(check_from(&server, &key, "192.0.2.10"), 200);
    }
    eventually("the webhook is delivered", Duration::from_secs(15), || {
        !hook.hooks().is_empty()
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(alerts_of(&db, &id, "key-usage-spike", "email").await, 1);
    assert_eq!(alerts_of(&db, &id, "key-usage-spike", "webhook").await, 1);
    // A key without a week's history has no usual rate to spike over.
    assert_eq!(
        alerts_of(&db, &young_id, "key-usage-spike", "email").await,
        0
    );
    // Nor is the owner's own network a new one.
    assert_eq!(alerts_of(&db, &id, "key-new-network", "email").await, 0);

    let mail: Vec<String> = emails(&server)
        .into_iter()
        .filter(|e| e.contains("sudden spike"))
        .collect();
    assert_eq!(mail.len(), 1);
    assert!(mail[0].contains("in the last 5 minutes"), "{}", mail[0]);
    assert!(!mail[0].contains(&key));
    let hooks = hook.hooks();
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    assert!(hooks[0].signed_with(SECRET));
    let body = hooks[0].json();
    assert_eq!(body["alert"], "usage-spike");
    let recent = body["evidence"]["recent_requests"].as_i64().unwrap();
    let usual = body["evidence"]["usual_per_5_minutes"].as_f64().unwrap();
    assert!(recent >= 100, "{body}");
    assert!(
        (0.1..=0.3).contains(&usual),
        "two an hour is a sixth per 5 minutes: {body}"
    );
    assert!(recent as f64 > 10.0 * usual);
    let metrics = get(&server.admin_url("/metrics"), &[]).body;
    assert!(
        metrics.contains("keywarden_alerts_total{kind=\"usage_spike\"} 1"),
        "{metrics}"
    );
}

/// A store made by the release before the alerts, with a revocation
/// email and its delivery attempts in it, is brought up to date without
/// losing a row, and its old emails stay once-only.
async fn a_store_with_outbox_history_is_upgraded_in_place(db: TestDb) {
    let backend = if db.sqlite_path().is_some() {
        "sqlite"
    } else {
        "postgres"
    };
    let older = tempfile::tempdir().unwrap();
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if name.as_str() < "20261204000008" {
            std::fs::copy(&path, older.path().join(&name)).unwrap();
        }
    }
    let migrator = sqlx::migrate::Migrator::new(older.path()).await.unwrap();
    match &db {
        TestDb::Sqlite { url, .. } => {
            use std::str::FromStr;
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
                .unwrap()
                .create_if_missing(true)
                .foreign_keys(true);
            let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
            migrator.run(&pool).await.unwrap();
        }
        TestDb::Postgres { url, .. } => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            migrator.run(&pool).await.unwrap();
        }
    }
    let hash = "ab".repeat(32);
    for sql in [
        format!(
            "INSERT INTO keys (id, key_hash, label, name, owner_id, owner_email, key_type, \
             created_at) VALUES ('k1', '{hash}', 'sk-or-v1-abc...def', 'old', \
             'o1', 'owner@example.com', 'standard', 1700000000)"
        ),
        "INSERT INTO incidents (key_id, kind, reporter, token_type, source, reported_at) \
         VALUES ('k1', 'revoked', 'github', 'openrouter_api_key', 'commit', 1700000100)"
            .to_string(),
        "INSERT INTO outbox (key_id, incident_id, kind, recipient, state, attempts, \
         next_attempt_at, created_at, sent_at) VALUES ('k1', 1, 'key-revoked', \
         'owner@example.com', 'sent', 2, 1700000100, 1700000100, 1700000160)"
            .to_string(),
        "INSERT INTO outbox_attempts (outbox_id, attempt, worker, finished_at, outcome, error) \
         VALUES (1, 1, 'w', 1700000130, 'retry', 'timed out'), \
                (1, 2, 'w', 1700000160, 'sent', NULL)"
            .to_string(),
    ] {
        db.exec(&sql).await;
    }
    // Opening it applies the new migration.
    let store = open_store(db.url()).await.unwrap();
    assert_eq!(db.query_i64("SELECT COUNT(*) FROM outbox").await, [1]);
    assert_eq!(
        db.query_i64("SELECT COUNT(*) FROM outbox_attempts").await,
        [2]
    );
    assert_eq!(
        db.query_i64("SELECT attempts FROM outbox WHERE channel = 'email' AND dedup = ''")
            .await,
        [2]
    );
    let rows = store.list_outbox(None).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].state, "sent");
    // The attempts still belong to their email.
    assert_eq!(
        db.query_i64("SELECT COUNT(*) FROM outbox_attempts a JOIN outbox o ON o.id = a.outbox_id")
            .await,
        [2]
    );
    // Still once per key and kind for the revocation email: reported
    // (again), the key is revoked and no second email is queued.
    let report = keywarden::keystore::LeakReport {
        hash: keywarden::keystore::KeyHash::from_hex(&hash).unwrap(),
        reporter: "github".into(),
        token_type: "openrouter_api_key".into(),
        url: None,
        source: "commit".into(),
        request_id: None,
    };
    let _ = store
        .record_leaks(&[report], OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(
        db.query_i64("SELECT COUNT(*) FROM keys WHERE revoked_at IS NOT NULL")
            .await,
        [1]
    );
    assert_eq!(
        db.query_i64("SELECT COUNT(*) FROM outbox WHERE kind = 'key-revoked'")
            .await,
        [1]
    );
}

on_both_backends!(
    a_key_used_from_a_new_network_alerts_its_owner_once,
    a_spike_over_the_usual_rate_alerts_once,
    a_store_with_outbox_history_is_upgraded_in_place
);

#[test]
fn a_webhook_without_its_secret_is_refused_at_start() {
    let db = TestDb::sqlite();
    let out = common::keywarden()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            db.url(),
            "--alert-webhook",
            "http://127.0.0.1:9/hook",
        ])
        .env_remove("KEYWARDEN_ALERT_WEBHOOK_SECRET")
        .timeout(Duration::from_secs(20))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--alert-webhook-secret"), "{err}");
}
