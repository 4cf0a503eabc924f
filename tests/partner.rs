//! The GitHub secret-scanning partner endpoint of a real `keywarden serve`,
//! with real P-256 signatures, a local GitHub-shaped key server, and real
//! SQLite and PostgreSQL stores.

#[macro_use]
mod common;

use common::db::TestDb;
use common::github::{FakeGithub, Signer, key_list, report, send};
use common::server::{Server, key_info, post};
use common::{create_key, keywarden};
use serde_json::{Value, json};

const PATH: &str = "/github/secret-scanning";

fn serve_trusting(db: &TestDb, signer: &Signer) -> (Server, tempfile::TempDir) {
    common::github::serve_trusting(db.url(), signer, &[])
}

async fn counts(db: &TestDb, key_id: &str) -> (i64, i64, i64, i64) {
    let q = |table: &str, extra: &str| {
        format!("SELECT COUNT(*) FROM {table} WHERE key_id = '{key_id}' {extra}")
    };
    (
        db.query_i64(&q("revocations", "")).await[0],
        db.query_i64(&q("incidents", "AND kind = 'revoked'")).await[0],
        db.query_i64(&q("incidents", "AND kind = 'sighting'")).await[0],
        db.query_i64(&q("outbox", "")).await[0],
    )
}

fn id_of(record: &Value) -> String {
    record["id"].as_str().unwrap().to_string()
}

async fn a_signed_report_revokes_live_keys_and_labels_every_token(db: TestDb) {
    let owner = ["--owner", "dev@example.com", "--name", "n"];
    let (live, live_rec) = create_key(db.url(), &owner);
    let (old, old_rec) = create_key(db.url(), &owner);
    keywarden()
        .args([
            "keys",
            "revoke",
            &id_of(&old_rec),
            "--database-url",
            db.url(),
        ])
        .assert()
        .success();
    let stranger = common::gen_key();
    let signer = Signer::new();
    let (server, _keys) = serve_trusting(&db, &signer);
    let body = report(&[&live, &old, &stranger, "not even a key"]);
    let reply = send(&server, &signer, &body);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let labels: Vec<Value> = serde_json::from_str(&reply.body).unwrap();
    let expect = |token: &str, label: &str| {
        json!({"token_hash": keywarden::secret::sha256_hex(token.as_bytes()),
               "token_type": "openrouter_api_key", "label": label})
    };
    assert_eq!(
        labels,
        vec![
            expect(&live, "true_positive"),
            expect(&old, "true_positive"),
            expect(&stranger, "false_positive"),
            expect("not even a key", "false_positive"),
        ]
    );
    assert_eq!(key_info(&server, &live).status, 401, "revoked at once");
    assert_eq!(counts(&db, &id_of(&live_rec)).await, (1, 1, 0, 1));
    assert_eq!(
        counts(&db, &id_of(&old_rec)).await,
        (1, 0, 1, 0),
        "sighting only"
    );
    let reason = db
        .query_i64(&format!(
            "SELECT COUNT(*) FROM keys WHERE id = '{}' AND revocation_reason = 'github-secret-scanning'",
            id_of(&live_rec)
        ))
        .await;
    assert_eq!(reason, [1]);
    let url_source = db
        .query_i64(&format!(
            "SELECT COUNT(*) FROM incidents WHERE key_id = '{}' AND source = 'commit' \
             AND url = 'https://github.com/acme/app/blob/abc123/.env'",
            id_of(&live_rec)
        ))
        .await;
    assert_eq!(url_source, [1]);
    let everything = db.raw_contents().await;
    for token in [&live, &old, &stranger] {
        assert!(!everything.contains(&token[9..]), "no token in the store");
    }
    let log = server.log_text();
    assert!(log.contains("partner report processed"), "{log}");
    for token in [&live, &old, &stranger] {
        assert!(!log.contains(&token[9..]), "no token in the logs: {log}");
    }
}

async fn the_same_batch_twice_revokes_and_queues_once(db: TestDb) {
    let (key, rec) = create_key(db.url(), &["--owner", "dev@example.com", "--name", "n"]);
    let signer = Signer::new();
    let (server, _keys) = serve_trusting(&db, &signer);
    let body = report(&[&key, &key]);
    for _ in 0..2 {
        let reply = send(&server, &signer, &body);
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert!(reply.body.matches("true_positive").count() == 2);
    }
    let (revocations, revoked, sightings, emails) = counts(&db, &id_of(&rec)).await;
    assert_eq!((revocations, revoked, emails), (1, 1, 1));
    assert_eq!(sightings, 3, "every later sighting is recorded");
}

/// Two replicas on one store receive the same batch at the same moment,
/// several times over: one revocation and one email per key.
async fn concurrent_deliveries_to_two_replicas_revoke_once(db: TestDb) {
    let owner = ["--owner", "dev@example.com", "--name", "n"];
    let keys: Vec<(String, Value)> = (0..5).map(|_| create_key(db.url(), &owner)).collect();
    let signer = Signer::new();
    let (a, _ka) = serve_trusting(&db, &signer);
    let (b, _kb) = serve_trusting(&db, &signer);
    let tokens: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
    let body = report(&tokens);
    let reversed = report(&tokens.iter().rev().copied().collect::<Vec<_>>());
    std::thread::scope(|s| {
        for i in 0..8 {
            let server = if i % 2 == 0 { &a } else { &b };
            let body = if i % 3 == 0 { &reversed } else { &body };
            let signer = &signer;
            s.spawn(move || {
                let reply = send(server, signer, body);
                assert_eq!(reply.status, 200, "{}", reply.body);
            });
        }
    });
    for (_, rec) in &keys {
        let (revocations, revoked, sightings, emails) = counts(&db, &id_of(rec)).await;
        assert_eq!(
            (revocations, revoked, emails),
            (1, 1, 1),
            "key {}",
            id_of(rec)
        );
        assert_eq!(sightings, 7);
    }
}

on_both_backends!(
    a_signed_report_revokes_live_keys_and_labels_every_token,
    the_same_batch_twice_revokes_and_queues_once,
    concurrent_deliveries_to_two_replicas_revoke_once,
    refused_requests_change_nothing
);

async fn refused_requests_change_nothing(db: TestDb) {
    let (key, rec) = create_key(db.url(), &["--owner", "dev@example.com", "--name", "n"]);
    let signer = Signer::new();
    let stranger = Signer::new();
    let (server, _keys) = serve_trusting(&db, &signer);
    let body = report(&[&key]);
    let url = server.url(PATH);
    let sig = signer.sign(&body);
    let id = signer.id.as_str();
    let mut tampered = body.clone();
    let at = tampered.len() - 3;
    tampered[at] ^= 1;
    let other_sig = signer.sign(&report(&[&common::gen_key()]));
    let oversize = {
        let mut b = report(&[&key]);
        b.truncate(b.len() - 1);
        b.extend(format!(",{{\"token\":\"{}\",\"type\":\"x\"}}]", "a".repeat(1 << 20)).bytes());
        b
    };
    let oversize_sig = signer.sign(&oversize);
    let stranger_sig = stranger.sign(&body);
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a [u8], u16);
    let cases: Vec<Case> = vec![
        (
            "tampered body",
            vec![
                ("Github-Public-Key-Identifier", id),
                ("Github-Public-Key-Signature", &sig),
            ],
            &tampered,
            401,
        ),
        (
            "signature of another body",
            vec![
                ("Github-Public-Key-Identifier", id),
                ("Github-Public-Key-Signature", &other_sig),
            ],
            &body,
            401,
        ),
        (
            "unknown key id",
            vec![
                ("Github-Public-Key-Identifier", &stranger.id),
                ("Github-Public-Key-Signature", &stranger_sig),
            ],
            &body,
            401,
        ),
        (
            "right id, wrong key",
            vec![
                ("Github-Public-Key-Identifier", id),
                ("Github-Public-Key-Signature", &stranger_sig),
            ],
            &body,
            401,
        ),
        (
            "no identifier header",
            vec![("Github-Public-Key-Signature", &sig)],
            &body,
            400,
        ),
        (
            "no signature header",
            vec![("Github-Public-Key-Identifier", id)],
            &body,
            400,
        ),
        (
            "signature not base64",
            vec![
                ("Github-Public-Key-Identifier", id),
                ("Github-Public-Key-Signature", "%%%not-base64%%%"),
            ],
            &body,
            400,
        ),
        (
            "signature not DER",
            vec![
                ("Github-Public-Key-Identifier", id),
                ("Github-Public-Key-Signature", "aGVsbG8gd29ybGQ="),
            ],
            &body,
            400,
        ),
        (
            "oversize body",
            vec![
                ("Github-Public-Key-Identifier", id),
                ("Github-Public-Key-Signature", &oversize_sig),
            ],
            &oversize,
            413,
        ),
    ];
    for (what, headers, body, status) in cases {
        let reply = post(&url, &headers, body);
        assert_eq!(reply.status, status, "{what}: {}", reply.body);
    }
    for (what, bad) in [
        ("bad JSON", b"[{\"token\":".to_vec()),
        ("not an array", b"{\"token\":\"x\",\"type\":\"y\"}".to_vec()),
        ("item without token", b"[{\"type\":\"y\"}]".to_vec()),
    ] {
        let reply = send(&server, &signer, &bad);
        assert_eq!(reply.status, 422, "{what}: {}", reply.body);
    }
    assert_eq!(counts(&db, &id_of(&rec)).await, (0, 0, 0, 0));
    assert_eq!(key_info(&server, &key).status, 200, "the key still works");
    assert!(!server.log_text().contains(&key[9..]));
}

#[test]
fn a_new_github_key_is_fetched_once_and_refreshes_are_limited() {
    let db = TestDb::sqlite();
    let (first, second, third) = (Signer::new(), Signer::new(), Signer::new());
    let github = FakeGithub::start(vec![first.listed(true)]);
    let server = Server::start_with_env(
        db.url(),
        &["--github-api-url", &github.base],
        &[("KEYWARDEN_GITHUB_TOKEN", "ghp_test_token_for_rate_limits")],
    );
    let body = report(&[&common::gen_key()]);
    wait_until(|| send(&server, &first, &body).status == 200);
    let after_start = github.fetches();
    // GitHub rotates: a second key appears, the first stays, not current.
    github.set_keys(vec![first.listed(false), second.listed(true)]);
    std::thread::scope(|s| {
        for _ in 0..10 {
            s.spawn(|| assert_eq!(send(&server, &second, &body).status, 200));
        }
    });
    assert_eq!(
        github.fetches(),
        after_start + 1,
        "one refresh for ten waiting requests"
    );
    assert_eq!(
        send(&server, &first, &body).status,
        200,
        "a non-current key is still accepted"
    );
    // A third identifier within the minute: no new fetch, refused.
    github.set_keys(vec![second.listed(true), third.listed(true)]);
    assert_eq!(send(&server, &third, &body).status, 401);
    assert_eq!(
        github.fetches(),
        after_start + 1,
        "at most one refresh a minute"
    );
    let auth = github.authorization_seen();
    assert!(
        auth.iter()
            .all(|a| a.as_deref() == Some("Bearer ghp_test_token_for_rate_limits")),
        "{auth:?}"
    );
    let metrics = common::server::get(&server.admin_url("/metrics"), &[]).body;
    assert!(
        metrics.contains("keywarden_github_noncurrent_key_uses_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("keywarden_partner_signature_failures_total{reason=\"unknown_key\"} 1"),
        "{metrics}"
    );
    assert!(
        !server.log_text().contains("ghp_test_token"),
        "the GitHub token is never logged"
    );
}

#[test]
fn until_githubs_keys_load_reports_get_503_and_readyz_says_why() {
    let db = TestDb::sqlite();
    let signer = Signer::new();
    let github = FakeGithub::start(vec![signer.listed(true)]);
    github.set_failing(true);
    let server = Server::start(db.url(), &["--github-api-url", &github.base]);
    let (key, _) = create_key(db.url(), &["--owner", "dev@example.com", "--name", "n"]);
    let body = report(&[&key]);
    wait_until(|| github.fetches() >= 1);
    let reply = send(&server, &signer, &body);
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert!(reply.retry_after.is_some());
    let ready = common::server::get(&server.admin_url("/readyz"), &[]);
    assert_eq!(ready.status, 503);
    assert!(
        ready.json()["github_keys"]
            .as_str()
            .unwrap()
            .contains("500"),
        "{}",
        ready.body
    );
    assert_eq!(
        key_info(&server, &key).status,
        200,
        "the key check works meanwhile"
    );
    github.set_failing(false);
    wait_until(|| common::server::get(&server.admin_url("/readyz"), &[]).status == 200);
    assert_eq!(send(&server, &signer, &body).status, 200);
    assert_eq!(key_info(&server, &key).status, 401);
}

#[test]
fn githubs_published_test_vector_is_accepted_over_http() {
    let db = TestDb::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys.json");
    let docs_key = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEsz9ugWDj5jK5ELBK42ynytbo38gP\nHzZFI03Exwz8Lh/tCfL3YxwMdLjB+bMznsanlhK0RwcGP3IDb34kQDIo3Q==\n-----END PUBLIC KEY-----\n";
    let id = "f9525bf080f75b3506ca1ead061add62b8633a346606dc5fe544e29231c6ee0d";
    let list = key_list(&[json!({"key_identifier": id, "key": docs_key, "is_current": true})]);
    std::fs::write(&file, list.to_string()).unwrap();
    let server = Server::start(db.url(), &["--github-keys-file", file.to_str().unwrap()]);
    let body =
        br#"[{"token":"some_token","type":"some_type","url":"some_url","source":"some_source"}]"#;
    let sig = "MEUCIFLZzeK++IhS+y276SRk2Pe5LfDrfvTXu6iwKKcFGCrvAiEAhHN2kDOhy2I6eGkOFmxNkOJ+L2y8oQ9A2T9GGJo6WJY=";
    let headers = [
        ("GITHUB-PUBLIC-KEY-IDENTIFIER", id),
        ("github-public-key-signature", sig),
    ];
    let reply = post(&server.url(PATH), &headers, body);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.json(),
        json!([{"token_hash": keywarden::secret::sha256_hex(b"some_token"),
                "token_type": "some_type", "label": "false_positive"}])
    );
    let mut with_newline = body.to_vec();
    with_newline.push(b'\n');
    assert_eq!(post(&server.url(PATH), &headers, &with_newline).status, 401);
}

#[test]
fn leak_to_401_end_to_end() {
    let db = TestDb::sqlite();
    let signer = Signer::new();
    let (server, _keys) = serve_trusting(&db, &signer);
    let out = keywarden()
        .args([
            "keys",
            "create",
            "--owner",
            "dev@example.com",
            "--name",
            "prod",
            "--database-url",
            db.url(),
        ])
        .output()
        .unwrap();
    let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(key_info(&server, &key).status, 200);
    let started = std::time::Instant::now();
    assert_eq!(send(&server, &signer, &report(&[&key])).status, 200);
    let mut checks = 0;
    while key_info(&server, &key).status != 401 {
        checks += 1;
        assert!(checks < 1000, "the key never stopped working");
    }
    let elapsed = started.elapsed();
    println!(
        "report to first 401: {:.2} ms ({} checks in between)",
        elapsed.as_secs_f64() * 1e3,
        checks
    );
    assert_eq!(checks, 0, "the very next check after the report is refused");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pending = rt.block_on(db.query_i64(
        "SELECT COUNT(*) FROM outbox WHERE state = 'pending' AND recipient = 'dev@example.com'",
    ));
    assert_eq!(pending, [1]);
    let incidents =
        rt.block_on(db.query_i64("SELECT COUNT(*) FROM incidents WHERE kind = 'revoked'"));
    assert_eq!(incidents, [1]);
    let metrics = common::server::get(&server.admin_url("/metrics"), &[]).body;
    for line in [
        "keywarden_revocations_total 1",
        "keywarden_outbox_depth 1",
        "keywarden_partner_tokens_total{label=\"true_positive\"} 1",
        "keywarden_http_requests_total{route=\"/github/secret-scanning\",status=\"200\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    assert!(!metrics.contains(&key[9..]));
}

#[test]
fn rehearsal_tools_sign_and_send_as_github_does() {
    let db = TestDb::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let out = keywarden()
        .args(["partner", "keygen", "--out", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let key_id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let server = Server::start(
        db.url(),
        &[
            "--github-keys-file",
            dir.path().join("github-keys.json").to_str().unwrap(),
        ],
    );
    let (key, _) = create_key(db.url(), &["--owner", "dev@example.com", "--name", "n"]);
    let body = dir.path().join("body.json");
    std::fs::write(&body, report(&[&key])).unwrap();
    let private = dir.path().join("private.pem");
    let signed = keywarden()
        .args([
            "partner",
            "sign",
            "--key",
            private.to_str().unwrap(),
            "--key-id",
            &key_id,
        ])
        .arg(&body)
        .output()
        .unwrap();
    let headers = String::from_utf8(signed.stdout).unwrap();
    assert!(headers.starts_with(&format!(
        "Github-Public-Key-Identifier: {key_id}\nGithub-Public-Key-Signature: "
    )));
    keywarden()
        .args([
            "partner",
            "send",
            &server.url(PATH),
            "--key",
            private.to_str().unwrap(),
            "--key-id",
            &key_id,
        ])
        .arg(&body)
        .assert()
        .success()
        .stdout(predicates::str::contains("true_positive"));
    assert_eq!(key_info(&server, &key).status, 401);
}

fn wait_until(ready: impl FnMut() -> bool) {
    common::eventually("the condition", std::time::Duration::from_secs(10), ready);
}
