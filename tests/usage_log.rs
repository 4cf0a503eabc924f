//! The usage log of a real `keywarden serve`: every key check with its
//! caller and outcome, `keys activity`, and who tried a leaked key after
//! its revocation (`incidents show`), on both stores.

#[macro_use]
mod common;

use common::db::TestDb;
use common::github::{Signer, report, send, serve_trusting};
use common::server::{Server, get, key_info};
use common::{create_key, eventually, keywarden};
use serde_json::Value;
use std::time::Duration;

const PROXY: &str = "127.0.0.1/32";

/// `GET /api/v1/key` as a client behind our proxy at `client`.
fn check_from(server: &Server, key: &str, client: &str, agent: &str) -> u16 {
    get(
        &server.url("/api/v1/key"),
        &[
            ("Authorization", &format!("Bearer {key}")),
            ("X-Forwarded-For", client),
            ("User-Agent", agent),
        ],
    )
    .status
}

fn json_of(args: &[&str]) -> Value {
    let out = keywarden().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn activity(db: &TestDb, id: &str, since: &str) -> Value {
    json_of(&[
        "keys",
        "activity",
        id,
        "--since",
        since,
        "--json",
        "--database-url",
        db.url(),
    ])
}

/// `{name: requests}` of a summary's list.
fn counts(list: &Value) -> Vec<(String, i64)> {
    let mut v: Vec<(String, i64)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["requests"].as_i64().unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

fn id_of(record: &Value) -> String {
    record["id"].as_str().unwrap().to_string()
}

fn owned(name: &str, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ["--owner", "dev@example.com", "--name", name]
        .iter()
        .map(|s| s.to_string())
        .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn make(db: &TestDb, name: &str, extra: &[&str]) -> (String, String) {
    let args = owned(name, extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (key, record) = create_key(db.url(), &args);
    (key, id_of(&record))
}

async fn every_check_is_logged_with_its_caller_and_outcome(db: TestDb) {
    let (good, good_id) = make(&db, "good", &["--type", "read-only"]);
    let (walled, walled_id) = make(&db, "walled", &["--allow-ip", "10.0.0.0/8"]);
    let (off, off_id) = make(&db, "off", &[]);
    let (gone, gone_id) = make(&db, "gone", &[]);
    let (soon, soon_id) = make(&db, "soon", &["--expires", "2s"]);
    for (cmd, id) in [("disable", &off_id), ("revoke", &gone_id)] {
        keywarden()
            .args(["keys", cmd, id, "--database-url", db.url()])
            .assert()
            .success();
    }
    let stranger = common::gen_key();
    let server = Server::start(db.url(), &["--trusted-proxy", PROXY]);
    std::thread::sleep(Duration::from_millis(2100));
    let long_agent = "a".repeat(5000);
    // 121 from two networks: the read-only key's 120, then a 429.
    for i in 0..121 {
        let client = if i % 3 == 0 {
            "198.51.100.7"
        } else {
            "203.0.113.5"
        };
        let status = check_from(&server, &good, client, &long_agent);
        assert_eq!(status, if i < 120 { 200 } else { 429 });
    }
    let v6 = "2001:db8:aa:bb::9";
    assert_eq!(check_from(&server, &walled, v6, "curl/8"), 403);
    assert_eq!(check_from(&server, &off, v6, "curl/8"), 401);
    assert_eq!(check_from(&server, &gone, v6, "curl/8"), 401);
    assert_eq!(check_from(&server, &soon, v6, "curl/8"), 401);
    assert_eq!(check_from(&server, &stranger, v6, "curl/8"), 401);
    // No key at all is nothing to log by.
    assert_eq!(key_info(&server, "not-a-key").status, 401);

    let mut seen = Value::Null;
    eventually(
        "the good key's checks are written",
        Duration::from_secs(10),
        || {
            seen = activity(&db, &good_id, "1h");
            seen["activity"]["requests"] == 121
        },
    );
    let a = &seen["activity"];
    assert_eq!(
        counts(&a["by_outcome"]),
        [("ok".to_string(), 120), ("rate-limited".to_string(), 1)]
    );
    assert_eq!(
        counts(&a["by_network"]),
        [
            ("198.51.100.0/24".to_string(), 41),
            ("203.0.113.0/24".to_string(), 80)
        ]
    );
    assert!(a["first"].as_str().unwrap() <= a["last"].as_str().unwrap());
    for (id, outcome) in [
        (&walled_id, "ip-refused"),
        (&off_id, "disabled"),
        (&gone_id, "revoked"),
        (&soon_id, "expired"),
    ] {
        let mut summary = Value::Null;
        eventually(outcome, Duration::from_secs(10), || {
            summary = activity(&db, id, "1h");
            summary["activity"]["requests"] == 1
        });
        assert_eq!(
            counts(&summary["activity"]["by_outcome"]),
            [(outcome.to_string(), 1)]
        );
        assert_eq!(
            counts(&summary["activity"]["by_network"]),
            [("2001:db8:aa::/48".to_string(), 1)]
        );
    }
    // The stranger is logged by its hash; the key itself is stored nowhere.
    let hash = keywarden::secret::sha256_hex(stranger.as_bytes());
    let unknown = db
        .query_i64(&format!(
            "SELECT CAST(SUM(requests) AS BIGINT) FROM key_usage \
             WHERE key_id IS NULL AND key_hash = '{hash}' AND outcome = 'unknown'"
        ))
        .await;
    assert_eq!(unknown, [1]);
    assert_eq!(
        db.query_i64("SELECT CAST(SUM(requests) AS BIGINT) FROM key_usage")
            .await,
        [126]
    );
    let raw = db.raw_contents().await;
    for key in [&good, &walled, &off, &gone, &soon, &stranger] {
        assert!(!raw.contains(key.as_str()), "a whole key in the store");
    }
    // User agents are kept capped.
    let longest = db
        .query_i64("SELECT CAST(MAX(LENGTH(user_agent)) AS BIGINT) FROM key_usage")
        .await;
    assert!(
        longest[0] <= 200,
        "user agent of {} characters kept",
        longest[0]
    );
}

async fn activity_counts_only_the_window_asked_for_and_old_records_expire(db: TestDb) {
    let (key, id) = make(&db, "k", &[]);
    let day_ms = 86_400_000i64;
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    for (days, n) in [(2, 3), (40, 5)] {
        for i in 0..n {
            db.exec(&format!(
                "INSERT INTO key_usage (key_id, at_ms, ip, network, outcome) \
                 VALUES ('{id}', {}, '192.0.2.1', '192.0.2.0/24', 'ok')",
                now_ms - days * day_ms - i
            ))
            .await;
        }
    }
    assert_eq!(activity(&db, &id, "24h")["activity"]["requests"], 0);
    assert_eq!(activity(&db, &id, "3d")["activity"]["requests"], 3);
    assert_eq!(activity(&db, &id, "60d")["activity"]["requests"], 8);
    // The server deletes what is past --usage-retention (30 days) at start.
    let server = Server::start(db.url(), &[]);
    assert_eq!(key_info(&server, &key).status, 200);
    let mut total = Value::Null;
    eventually("old records are deleted", Duration::from_secs(10), || {
        total = activity(&db, &id, "60d");
        total["activity"]["requests"] == 4
    });
    assert_eq!(activity(&db, &id, "3d")["activity"]["requests"], 4);
    // And the text form says the same, escaped.
    let out = keywarden()
        .args([
            "keys",
            "activity",
            &id,
            "--since",
            "60d",
            "--database-url",
            db.url(),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("4 requests since"), "{text}");
    assert!(text.contains("192.0.2.0/24"), "{text}");
}

async fn incidents_show_who_tried_a_leaked_key_after_its_revocation(db: TestDb) {
    let (key, id) = make(&db, "leaky", &[]);
    let signer = Signer::new();
    let (server, _keys) = serve_trusting(
        db.url(),
        &signer,
        &["--trusted-proxy", PROXY, "--alert-revoked-use-after", "0s"],
    );
    // Used before the leak, from the owner's own network.
    for _ in 0..3 {
        assert_eq!(check_from(&server, &key, "192.0.2.10", "app/1.0"), 200);
    }
    assert_eq!(send(&server, &signer, &report(&[&key])).status, 200);
    // 50 attempts after the revocation, from two networks.
    for i in 0..50 {
        let client = if i % 5 == 0 {
            "198.51.100.23"
        } else {
            "203.0.113.99"
        };
        assert_eq!(check_from(&server, &key, client, "python-requests/2"), 401);
    }
    let list = json_of(&["incidents", "list", "--json", "--database-url", db.url()]);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["key_id"], id.as_str());
    assert_eq!(list[0]["kind"], "revoked");
    let number = list[0]["id"].as_i64().unwrap().to_string();
    let mut shown = Value::Null;
    eventually("the attempts are written", Duration::from_secs(10), || {
        shown = json_of(&[
            "incidents",
            "show",
            &number,
            "--json",
            "--database-url",
            db.url(),
        ]);
        shown["after_revocation"]["requests"] == 50
    });
    let after = &shown["after_revocation"];
    assert_eq!(after["networks"], 2);
    assert_eq!(
        counts(&after["by_network"]),
        [
            ("198.51.100.0/24".to_string(), 10),
            ("203.0.113.0/24".to_string(), 40)
        ]
    );
    assert_eq!(counts(&after["by_outcome"]), [("revoked".to_string(), 50)]);
    assert_eq!(shown["incident"]["source"], "commit");
    assert!(shown["key"]["revoked_at"].is_string());
    // The owner's own use before the leak is not an attempt after it.
    let text = keywarden()
        .args(["incidents", "show", &number, "--database-url", db.url()])
        .output()
        .unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("50 attempts from 2 networks"), "{text}");
    assert!(!text.contains("192.0.2.0/24"), "{text}");
    // One "still in use" alert, not fifty, beside the revocation email;
    // neither holds the key.
    // (Queued once the usage log has written the attempt that raised it.)
    let alerts = || async {
        db.query_i64(&format!(
            "SELECT COUNT(*) FROM outbox WHERE key_id = '{id}' AND kind = 'key-still-in-use'"
        ))
        .await
    };
    let started = std::time::Instant::now();
    while alerts().await == [0] && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(alerts().await, [1]);
    let mut emails: Vec<String> = Vec::new();
    eventually("both emails are written", Duration::from_secs(15), || {
        emails = std::fs::read_dir(server.mail_dir.path())
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            // Undo quoted-printable's soft line breaks.
            .map(|e| e.replace("=\r\n", ""))
            .collect();
        emails.len() >= 2
    });
    std::thread::sleep(Duration::from_secs(2));
    let all = std::fs::read_dir(server.mail_dir.path()).unwrap().count();
    assert_eq!(all, 2, "one revocation email and one alert");
    let alert: Vec<&String> = emails
        .iter()
        .filter(|e| e.contains("is still being used"))
        .collect();
    assert_eq!(alert.len(), 1, "{emails:?}");
    let alert = alert[0];
    assert!(alert.contains("Attempts since then:"), "{alert}");
    assert!(alert.contains("198.51.100.0/24"), "{alert}");
    for email in &emails {
        assert!(!email.contains(key.as_str()), "an email holds the key");
    }
    assert!(
        get(&server.admin_url("/metrics"), &[])
            .body
            .contains("keywarden_alerts_total{kind=\"still_in_use\"} 1")
    );
    let err = keywarden()
        .args(["incidents", "show", "999999", "--database-url", db.url()])
        .output()
        .unwrap();
    assert_eq!(err.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&err.stderr).contains("no incident 999999"));
}

/// The log keeps one row for the checks of one key, caller, outcome and
/// user agent within a second, with their count and the first and last
/// check's times: a busy key's own service costs the store a row a second,
/// not one a check, and nothing a summary shows is lost.
async fn a_callers_checks_within_a_second_share_one_row(db: TestDb) {
    let (key, id) = make(&db, "busy", &[]);
    let server = Server::start(db.url(), &["--trusted-proxy", PROXY]);
    let now_ms = || time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    let started = now_ms();
    let mut first_answered = 0;
    let mut last_sent = 0;
    for i in 0..220 {
        // One check in ten from a second network, with another agent.
        let (client, agent) = if i % 10 == 0 {
            ("198.51.100.7", "cron/2")
        } else {
            ("203.0.113.5", "app/1")
        };
        if i == 219 {
            last_sent = now_ms();
        }
        assert_eq!(check_from(&server, &key, client, agent), 200);
        if i == 0 {
            first_answered = now_ms();
        }
    }
    let ended = now_ms();
    let mut seen = Value::Null;
    eventually("the checks are written", Duration::from_secs(10), || {
        seen = activity(&db, &id, "1h");
        seen["activity"]["requests"] == 220
    });
    assert_eq!(
        counts(&seen["activity"]["by_network"]),
        [
            ("198.51.100.0/24".to_string(), 22),
            ("203.0.113.0/24".to_string(), 198)
        ]
    );
    let rows = db
        .query_i64(&format!(
            "SELECT COUNT(*) FROM key_usage WHERE key_id = '{id}'"
        ))
        .await[0];
    assert!(
        rows * 5 <= 220,
        "{rows} rows for 220 checks in {} ms",
        ended - started
    );
    let agents = db
        .query_i64(&format!(
            "SELECT CAST(SUM(requests) AS BIGINT) FROM key_usage \
             WHERE key_id = '{id}' AND user_agent = 'cron/2' AND ip = '198.51.100.7'"
        ))
        .await;
    assert_eq!(agents, [22]);
    // The first and the last check keep their own times.
    let first = db
        .query_i64(&format!(
            "SELECT MIN(at_ms) FROM key_usage WHERE key_id = '{id}'"
        ))
        .await;
    let last = db
        .query_i64(&format!(
            "SELECT MAX(at_ms + span_ms) FROM key_usage WHERE key_id = '{id}'"
        ))
        .await;
    let (first, last) = (i128::from(first[0]), i128::from(last[0]));
    assert!(
        (started..=first_answered).contains(&first),
        "first check at {first}, sent at {started}, answered at {first_answered}"
    );
    assert!(
        (last_sent..=ended).contains(&last),
        "last check at {last}, sent at {last_sent}, answered by {ended}"
    );
}

on_both_backends!(
    a_callers_checks_within_a_second_share_one_row,
    every_check_is_logged_with_its_caller_and_outcome,
    activity_counts_only_the_window_asked_for_and_old_records_expire,
    incidents_show_who_tried_a_leaked_key_after_its_revocation
);

#[test]
fn a_check_never_waits_for_the_log_and_overflow_is_counted() {
    let db = TestDb::sqlite();
    let (key, _) = make(&db, "k", &[]);
    let server = Server::start(db.url(), &["--usage-queue", "10"]);
    // Hold SQLite's write lock: the log's writer waits, reads go on (WAL).
    let path = db.sqlite_path().unwrap();
    let lock = WriteLock::hold(&path);
    // One check, and time for the writer to gather it (a second) and
    // start a write that waits for the lock: what comes next stays queued.
    assert_eq!(key_info(&server, &key).status, 200);
    std::thread::sleep(Duration::from_millis(1500));
    let started = std::time::Instant::now();
    for _ in 0..60 {
        assert_eq!(key_info(&server, &key).status, 200);
    }
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "checks waited on the log: {:?}",
        started.elapsed()
    );
    let metrics = || get(&server.admin_url("/metrics"), &[]).body;
    eventually("overflow is counted", Duration::from_secs(5), || {
        metrics().contains("keywarden_usage_records_dropped_total{reason=\"queue_full\"}")
    });
    drop(lock);
    eventually(
        "what was queued is written",
        Duration::from_secs(20),
        || {
            metrics().lines().any(|l| {
                l.starts_with("keywarden_usage_records_written_total") && !l.ends_with(" 0")
            })
        },
    );
}

#[test]
fn queued_records_are_written_before_a_graceful_stop() {
    let db = TestDb::sqlite();
    let (key, id) = make(&db, "k", &[]);
    let server = Server::start(db.url(), &[]);
    // The writer is held up: what the checks log stays queued.
    let lock = WriteLock::hold(&db.sqlite_path().unwrap());
    for _ in 0..25 {
        assert_eq!(key_info(&server, &key).status, 200);
    }
    server.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_secs(2));
    drop(lock);
    eventually("the server stops", Duration::from_secs(30), || {
        server.log_text().contains("keywarden: stopped")
    });
    let log = server.log_text();
    assert!(
        log.contains("usage records written before stopping"),
        "{log}"
    );
    drop(server);
    let summary = activity(&db, &id, "1h");
    assert_eq!(summary["activity"]["requests"], 25, "{summary}");
}

/// Holds the write lock of a SQLite file until dropped.
struct WriteLock(std::process::Child);

impl WriteLock {
    fn hold(path: &std::path::Path) -> WriteLock {
        // sqlite3's shell is not on every machine: Python's module is.
        let mut child = std::process::Command::new("python3")
            .args([
                "-c",
                "import sqlite3, sys, time\n\
                 c = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
                 c.execute('BEGIN IMMEDIATE')\n\
                 print('locked', flush=True)\n\
                 time.sleep(60)",
            ])
            .arg(path)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line.trim(), "locked");
        WriteLock(child)
    }
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A busy log writes many checks per store transaction, not one or two:
/// at most one write per linger (a second) while checks keep coming.
#[test]
fn a_busy_log_writes_many_checks_per_transaction() {
    let db = TestDb::sqlite();
    let (key, _) = make(&db, "k", &[]);
    let server = Server::start(db.url(), &[]);
    let metric = |name: &str| -> u64 {
        let body = get(&server.admin_url("/metrics"), &[]).body;
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or(0)
    };
    let started = std::time::Instant::now();
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..50 {
                    assert_eq!(key_info(&server, &key).status, 200);
                }
            });
        }
    });
    eventually("every check is written", Duration::from_secs(20), || {
        metric("keywarden_usage_records_written_total") == 400
    });
    let elapsed = started.elapsed();
    let writes = metric("keywarden_usage_writes_total");
    let most = elapsed.as_millis() / 1000 + 2;
    assert!(
        (1..=most as u64).contains(&writes),
        "{writes} writes for 400 checks in {elapsed:?} (at most {most})"
    );
    // One key from one caller: a row for each second of each write.
    let rows = metric("keywarden_usage_rows_written_total");
    assert!(
        (1..=2 * most as u64).contains(&rows),
        "{rows} rows for 400 checks in {elapsed:?}"
    );
}
