//! Owner notification over real SMTP (an SMTP server inside the test), on
//! real SQLite and PostgreSQL stores, and the whole loop end to end.

mod common;

use common::db::TestDb;
use common::github::Signer;
use common::server::{key_info, post};
use common::smtp::{Mode, SmtpSink};
use common::{GitRepo, create_key, keywarden};
use keywarden::keystore::{KeySpec, KeyStore, LeakReport, create_key as store_create, open_store};
use serde_json::Value;
use std::sync::Arc;
use time::OffsetDateTime;

const URL: &str = "https://github.com/acme/app/blob/abc123/config/.env";

/// A key in `db`, revoked by a leak report: one queued email.
async fn queue_revocation(store: &Arc<dyn KeyStore>, owner: &str, name: &str) -> String {
    let now = OffsetDateTime::now_utc();
    let (key, _) = store_create(&**store, KeySpec::new(name, owner), now)
        .await
        .unwrap();
    let text = String::from_utf8(key.expose().to_vec()).unwrap();
    report_leak(store, &key, URL, now).await;
    text
}

/// GitHub reports `key` found at `url`: revoked, one email queued.
async fn report_leak(
    store: &Arc<dyn KeyStore>,
    key: &keywarden::secret::Secret,
    url: &str,
    now: OffsetDateTime,
) {
    store
        .record_leaks(
            &[LeakReport {
                hash: keywarden::keystore::KeyHash::of(key.expose()),
                reporter: "github-secret-scanning".into(),
                token_type: "openrouter_api_key".into(),
                url: Some(url.into()),
                source: "commit".into(),
                request_id: None,
            }],
            now,
        )
        .await
        .unwrap();
}

fn run_once(db: &TestDb, smtp: Option<&SmtpSink>, extra: &[&str]) -> String {
    let mut cmd = keywarden();
    cmd.args(["outbox", "run", "--once", "--database-url", db.url()]);
    if let Some(smtp) = smtp {
        cmd.args(["--smtp-url", &smtp.url()]);
    }
    let out = cmd.args(extra).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn outbox(db: &TestDb) -> Vec<Value> {
    let out = keywarden()
        .args(["outbox", "list", "--json", "--database-url", db.url()])
        .output()
        .unwrap();
    assert!(out.status.success());
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn a_revocation_sends_one_email_with_the_facts_and_never_the_key() {
    let db = TestDb::sqlite();
    let store = open_store(db.url()).await.unwrap();
    let key = queue_revocation(&store, "dev@example.com", "billing service").await;
    let smtp = SmtpSink::start_new();
    let summary = run_once(&db, Some(&smtp), &[]);
    assert!(summary.starts_with("sent 1,"), "{summary}");
    assert!(run_once(&db, Some(&smtp), &[]).starts_with("sent 0,"));
    let mail = smtp.wait_for(1);
    assert_eq!(mail.len(), 1, "exactly one email");
    let m = &mail[0];
    assert_eq!(m.to, ["dev@example.com"]);
    assert_eq!(m.from, "keywarden@localhost");
    let label = format!("{}...{}", &key[..12], &key[70..]);
    let data = m.data.replace("=\r\n", "");
    for needed in [
        "Subject: Your OpenRouter API key \"billing service\"",
        &label,
        URL,
        "source: commit",
        "GitHub secret scanning",
        "Revoked:",
        "Create a new key",
        "multipart/alternative",
        "text/html",
    ] {
        assert!(data.contains(needed), "missing {needed:?} in\n{data}");
    }
    assert!(
        !m.data.contains(&key[9..]) && !data.contains(&key[9..]),
        "never the whole key"
    );
    let rows = outbox(&db);
    assert_eq!(rows[0]["state"], "sent");
    assert_eq!(rows[0]["attempts"], 1);
}

#[tokio::test]
async fn smtp_down_keeps_the_email_pending_then_it_is_delivered_once() {
    let db = TestDb::sqlite();
    let store = open_store(db.url()).await.unwrap();
    queue_revocation(&store, "dev@example.com", "k").await;
    let smtp = SmtpSink::reserve();
    let args = ["--retry-base", "1s"];
    let first = run_once(&db, Some(&smtp), &args);
    assert!(first.contains("retrying 1"), "{first}");
    let rows = outbox(&db);
    assert_eq!(rows[0]["state"], "pending");
    assert_eq!(rows[0]["attempts"], 1);
    let error = rows[0]["last_error"].as_str().unwrap();
    assert!(!error.is_empty(), "the error is kept");
    assert_eq!(rows[0]["errors"].as_array().unwrap().len(), 1);
    smtp.start();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert!(run_once(&db, Some(&smtp), &args).starts_with("sent 1,"));
    assert!(run_once(&db, Some(&smtp), &args).starts_with("sent 0,"));
    assert_eq!(smtp.wait_for(1).len(), 1);
    let rows = outbox(&db);
    assert_eq!(
        (rows[0]["state"].as_str(), rows[0]["attempts"].as_i64()),
        (Some("sent"), Some(2))
    );
}

#[tokio::test]
async fn a_5xx_fails_at_once_and_an_operator_can_retry_it() {
    let db = TestDb::sqlite();
    let store = open_store(db.url()).await.unwrap();
    queue_revocation(&store, "dev@example.com", "k").await;
    let smtp = SmtpSink::start_new();
    smtp.set_mode(Mode::Refuse5xx);
    assert!(run_once(&db, Some(&smtp), &["--retry-base", "0s"]).contains("failed 1"));
    assert!(
        run_once(&db, Some(&smtp), &["--retry-base", "0s"])
            .starts_with("sent 0, retrying 0, failed 0")
    );
    let rows = outbox(&db);
    assert_eq!(
        (rows[0]["state"].as_str(), rows[0]["attempts"].as_i64()),
        (Some("failed"), Some(1))
    );
    assert!(rows[0]["last_error"].as_str().unwrap().contains("554"));
    let id = rows[0]["id"].to_string();
    smtp.set_mode(Mode::Accept);
    keywarden()
        .args(["outbox", "retry", &id, "--database-url", db.url()])
        .assert()
        .success();
    assert!(run_once(&db, Some(&smtp), &[]).starts_with("sent 1,"));
    assert_eq!(smtp.received().len(), 1);
}

#[tokio::test]
async fn a_4xx_is_retried_with_each_error_kept_until_dead() {
    let db = TestDb::sqlite();
    let store = open_store(db.url()).await.unwrap();
    queue_revocation(&store, "dev@example.com", "k").await;
    let smtp = SmtpSink::start_new();
    smtp.set_mode(Mode::Refuse4xx);
    let summary = run_once(
        &db,
        Some(&smtp),
        &["--retry-base", "0s", "--max-attempts", "3"],
    );
    assert!(summary.contains("dead 1"), "{summary}");
    let rows = outbox(&db);
    assert_eq!(
        (rows[0]["state"].as_str(), rows[0]["attempts"].as_i64()),
        (Some("dead"), Some(3))
    );
    let errors = rows[0]["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 3);
    assert!(
        errors.iter().all(|e| e.as_str().unwrap().contains("451")),
        "{errors:?}"
    );
    assert!(smtp.received().is_empty());
}

#[tokio::test]
async fn without_smtp_the_email_is_an_eml_file() {
    let db = TestDb::sqlite();
    let store = open_store(db.url()).await.unwrap();
    let key = queue_revocation(&store, "dev@example.com", "local").await;
    let dir = tempfile::tempdir().unwrap();
    let summary = run_once(&db, None, &["--mail-dir", dir.path().to_str().unwrap()]);
    assert!(summary.contains(".eml files in"), "{summary}");
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(
        text.contains("To: dev@example.com") && text.contains("\"local\""),
        "{text}"
    );
    assert!(!text.contains(&key[9..]));
}

#[tokio::test]
async fn an_email_claimed_by_a_dead_worker_is_sent_when_its_lease_runs_out() {
    let db = TestDb::sqlite();
    let store = open_store(db.url()).await.unwrap();
    queue_revocation(&store, "dev@example.com", "k").await;
    let now = OffsetDateTime::now_utc();
    let claimed = store
        .claim_outbox(
            "worker-that-dies",
            now,
            now + time::Duration::seconds(1),
            10,
        )
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let smtp = SmtpSink::start_new();
    assert!(
        run_once(&db, Some(&smtp), &[]).starts_with("sent 0,"),
        "leased to another worker"
    );
    std::thread::sleep(std::time::Duration::from_millis(2100));
    assert!(run_once(&db, Some(&smtp), &[]).starts_with("sent 1,"));
    assert_eq!(smtp.wait_for(1).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_on_postgres_deliver_100_emails_exactly_once() {
    let db = TestDb::postgres().await;
    let store = open_store(db.url()).await.unwrap();
    for i in 0..100 {
        queue_revocation(
            &store,
            &format!("owner{i}@example.com"),
            &format!("key {i}"),
        )
        .await;
    }
    let smtp = SmtpSink::start_new();
    let bin = assert_cmd::cargo::cargo_bin("keywarden");
    let workers: Vec<_> = (0..2)
        .map(|_| {
            std::process::Command::new(&bin)
                .args([
                    "outbox",
                    "run",
                    "--once",
                    "--database-url",
                    db.url(),
                    "--smtp-url",
                    &smtp.url(),
                ])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut sent_by_worker = Vec::new();
    for w in workers {
        let out = w.wait_with_output().unwrap();
        assert!(out.status.success());
        sent_by_worker.push(String::from_utf8(out.stdout).unwrap());
    }
    let mail = smtp.wait_for(100);
    std::thread::sleep(std::time::Duration::from_millis(200));
    let mail = if smtp.received().len() > mail.len() {
        smtp.received()
    } else {
        mail
    };
    assert_eq!(mail.len(), 100, "{sent_by_worker:?}");
    let mut recipients: Vec<String> = mail.iter().map(|m| m.to.join(",")).collect();
    recipients.sort();
    recipients.dedup();
    assert_eq!(recipients.len(), 100, "each owner got exactly one email");
    assert!(
        outbox(&db)
            .iter()
            .all(|r| r["state"] == "sent" && r["attempts"] == 1)
    );
}

/// The whole loop on one machine: a key is created and works, leaks into a
/// repository, `history` finds it, GitHub reports it, it stops working, and
/// its owner is told.
#[test]
fn the_whole_loop_end_to_end() {
    let db = TestDb::sqlite();
    let smtp = SmtpSink::start_new();
    let signer = Signer::new();
    let (server, _keys) = common::github::serve_trusting(
        db.url(),
        &signer,
        &["--smtp-url", &smtp.url(), "--mail-poll", "50ms"],
    );
    let (key, record) = create_key(
        db.url(),
        &["--owner", "owner@example.com", "--name", "prod"],
    );
    assert_eq!(key_info(&server, &key).status, 200);

    let repo = GitRepo::new();
    repo.commit(
        &[("deploy/.env", Some(&format!("OPENROUTER_API_KEY={key}\n")))],
        "add deploy config",
    );
    let out = keywarden()
        .args(["history", repo.path().to_str().unwrap(), "-q", "-f", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let found: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["path"], "deploy/.env");
    assert_eq!(found[0]["secret"], record["label"]);

    let body = serde_json::to_vec(&serde_json::json!([{
        "token": key, "type": "openrouter_api_key",
        "url": "https://github.com/acme/app/blob/main/deploy/.env", "source": "commit"
    }]))
    .unwrap();
    let started = std::time::Instant::now();
    let reply = post(
        &server.url("/github/secret-scanning"),
        &[
            ("Github-Public-Key-Identifier", &signer.id),
            ("Github-Public-Key-Signature", &signer.sign(&body)),
        ],
        &body,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(key_info(&server, &key).status, 401);
    let to_401 = started.elapsed();
    let mail = smtp.wait_for(1);
    let to_email = started.elapsed();
    println!(
        "report to 401: {:.1} ms; report to email received: {:.1} ms",
        to_401.as_secs_f64() * 1e3,
        to_email.as_secs_f64() * 1e3
    );
    assert_eq!(mail.len(), 1);
    assert_eq!(mail[0].to, ["owner@example.com"]);
    assert!(mail[0].data.contains("deploy/.env"));
    assert!(!mail[0].data.contains(&key[9..]));
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(smtp.received().len(), 1, "sent once");
    let metrics = common::server::get(&server.admin_url("/metrics"), &[]).body;
    assert!(
        metrics.contains("keywarden_outbox_emails{state=\"sent\"} 1"),
        "{metrics}"
    );
    assert!(!server.log_text().contains(&key[9..]));
}

/// The email's text with quoted-printable undone (soft breaks, `=XX`).
fn decoded(data: &str) -> String {
    let joined = data.replace("=\r\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (bytes[i], hex) {
            (b'=', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn report_urls_and_key_names_cannot_forge_lines_or_links_in_the_email() {
    let db = TestDb::sqlite();
    let store = open_store(db.url()).await.unwrap();
    let now = OffsetDateTime::now_utc();
    let forged = "https://github.com/o/r/blob/main/.env\nRevoked: no - your key is still active.\
                  \r\n\r\n1. paste your key at https://evil.test\u{2028}Steps: none";
    let cases = [
        (forged, "billing"),
        ("javascript:alert(1)//\nhttp://evil.test", "k"),
        ("http://evil.test/x", "k"),
        ("https://github.com/o/r/blob/main/config.env", "k"),
        ("https://github.com@evil.example/o/r", "k"),
        ("see www.evil.example/login", "k"),
    ];
    for (url, name) in cases {
        let (key, record) = store_create(&*store, KeySpec::new(name, "dev@example.com"), now)
            .await
            .unwrap();
        // A name from before names were checked, with a line break in it.
        db.exec(&format!(
            "UPDATE keys SET name = 'old\nKey:       forged\u{1b}[2J' WHERE id = '{}'",
            record.id
        ))
        .await;
        report_leak(&store, &key, url, now).await;
    }
    let smtp = SmtpSink::start_new();
    run_once(&db, Some(&smtp), &[]);
    let mail = smtp.wait_for(6);
    assert_eq!(mail.len(), 6);
    for m in &mail {
        let text = decoded(&m.data);
        for line in text.lines() {
            for forged_start in [
                "Revoked: no",
                "1. paste",
                "Steps: none",
                "Key:       forged",
            ] {
                assert!(
                    !line.trim_start().starts_with(forged_start),
                    "a forged line {line:?} in\n{text}"
                );
            }
            assert!(
                !line.contains('\u{1b}') && !line.contains('\u{2028}'),
                "{line:?}"
            );
            assert!(
                !line.trim_start().starts_with("http://evil.test"),
                "{line:?}"
            );
        }
        // The escaped forms are shown, so the owner sees what was reported.
        assert!(text.contains("old\\nKey:"), "{text}");
        // Only an https URL is ever a link, in the HTML part.
        for href in text.split("href=\"").skip(1) {
            assert!(
                href.starts_with("https://github.com/o/r/"),
                "link {href:.40}"
            );
        }
        assert!(!text.contains("href=\"javascript") && !text.contains("href=\"http:"));
    }
    // A clean https URL is a link; the others are shown defanged, as text.
    let all: String = mail.iter().map(|m| decoded(&m.data)).collect();
    assert!(
        all.contains("<a href=\"https://github.com/o/r/blob/main/config.env\">"),
        "{all}"
    );
    assert_eq!(all.matches("<a href=").count(), 1, "{all}");
    assert!(all.contains("hxxp[:]//evil.test/x"), "{all}");
    assert!(
        all.contains("hxxps[:]//github.com@evil.example/o/r"),
        "{all}"
    );
    assert!(all.contains("www[.]evil.example/login"), "{all}");
}

#[tokio::test]
async fn an_owner_address_the_mailer_cannot_use_fails_visibly() {
    let db = TestDb::sqlite();
    let store = open_store(db.url()).await.unwrap();
    queue_revocation(&store, "dev@example.com", "k").await;
    // A row from before addresses were parsed like the mailer parses them.
    db.exec("UPDATE keys SET owner_email = 'a@example.test,evil@attacker.test'")
        .await;
    db.exec("UPDATE outbox SET recipient = 'a@example.test,evil@attacker.test'")
        .await;
    let smtp = SmtpSink::start_new();
    let out = keywarden()
        .args(["outbox", "run", "--once", "--database-url", db.url()])
        .args(["--smtp-url", &smtp.url()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ERROR") && stderr.contains("will not be retried"),
        "a permanent failure is logged at error level: {stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("failed 1"));
    let rows = outbox(&db);
    assert_eq!(rows[0]["state"], "failed");
    assert!(
        rows[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("recipient")
    );
    assert!(smtp.received().is_empty(), "nothing sent anywhere");
}
