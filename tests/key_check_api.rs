//! `GET /api/v1/key` of a real `keywarden serve` on a real store.

mod common;

use common::db::TestDb;
use common::server::{Server, get, key_info};
use common::{create_key, keywarden};

fn revoke(db: &TestDb, id: &str) {
    keywarden()
        .args([
            "keys",
            "revoke",
            id,
            "--reason",
            "leaked",
            "--database-url",
            db.url(),
        ])
        .assert()
        .success();
}

#[test]
fn live_key_gets_openrouters_key_info_shape() {
    let db = TestDb::sqlite();
    let (key, record) = create_key(
        db.url(),
        &[
            "--owner",
            "dev@example.com",
            "--name",
            "agent",
            "--type",
            "scoped",
            "--scope",
            "anthropic/*",
            "--credit-limit",
            "20",
            "--expires",
            "30d",
        ],
    );
    let server = Server::start(db.url(), &[]);
    let reply = key_info(&server, &key);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let data = &reply.json()["data"];
    assert_eq!(data["label"], record["label"]);
    assert_eq!(
        data["label"].as_str().unwrap(),
        format!("{}...{}", &key[..12], &key[70..])
    );
    assert_eq!(data["limit"], 20.0);
    assert_eq!(data["usage"], 0.0);
    assert_eq!(data["limit_remaining"], 20.0);
    assert_eq!(data["is_free_tier"], false);
    assert_eq!(data["rate_limit"]["requests"], 300);
    assert_eq!(data["rate_limit"]["interval"], "1m");
    assert_eq!(data["type"], "scoped");
    assert_eq!(data["scopes"], serde_json::json!(["anthropic/*"]));
    assert_eq!(data["expires_at"], record["expires_at"]);
    assert!(!reply.body.contains(&key[9..]), "the key is never echoed");
    assert_eq!(get(&server.url("/healthz"), &[]).status, 200);
}

#[test]
fn every_bad_key_gets_the_same_401() {
    let db = TestDb::sqlite();
    let (revoked, record) = create_key(db.url(), &["--owner", "a@example.com", "--name", "r"]);
    revoke(&db, record["id"].as_str().unwrap());
    // An imported inventory key that expired long ago.
    let expired = common::gen_key();
    let inventory = format!(
        "key,name,owner_email,expires_at\n{expired},old,a@example.com,2020-01-01T00:00:00Z\n"
    );
    keywarden()
        .args(["keys", "import", "-", "--database-url", db.url()])
        .write_stdin(inventory)
        .assert()
        .success();
    let server = Server::start(db.url(), &[]);
    let url = server.url("/api/v1/key");
    let unknown = format!("Bearer {}", common::gen_key());
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("missing header", vec![]),
        (
            "other scheme",
            vec![("Authorization", format!("Basic {revoked}"))],
        ),
        (
            "malformed key",
            vec![("Authorization", "Bearer sk-or-v1-abc".into())],
        ),
        ("unknown key", vec![("Authorization", unknown)]),
        (
            "revoked key",
            vec![("Authorization", format!("Bearer {revoked}"))],
        ),
        (
            "expired key",
            vec![("Authorization", format!("Bearer {expired}"))],
        ),
    ];
    let mut bodies = Vec::new();
    for (what, headers) in &cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let reply = get(&url, &headers);
        assert_eq!(reply.status, 401, "{what}: {}", reply.body);
        bodies.push(reply.body);
    }
    bodies.dedup();
    assert_eq!(bodies.len(), 1, "one uniform body: {bodies:?}");
}

fn revocation_is_seen_by_the_very_next_request(db: TestDb) {
    let (key, record) = create_key(db.url(), &["--owner", "a@example.com", "--name", "n"]);
    let server = Server::start(db.url(), &[]);
    assert_eq!(key_info(&server, &key).status, 200);
    revoke(&db, record["id"].as_str().unwrap());
    assert_eq!(key_info(&server, &key).status, 401);
}

#[test]
fn revocation_is_seen_by_the_very_next_request_on_sqlite() {
    revocation_is_seen_by_the_very_next_request(TestDb::sqlite());
}

#[tokio::test]
async fn revocation_is_seen_by_the_very_next_request_on_postgres() {
    let db = TestDb::postgres().await;
    tokio::task::spawn_blocking(move || revocation_is_seen_by_the_very_next_request(db))
        .await
        .unwrap();
}

#[test]
fn ip_allowlist_is_checked_before_the_key_itself() {
    let db = TestDb::sqlite();
    let args = ["--owner", "a@example.com", "--name", "office"];
    let (office, office_rec) = create_key(
        db.url(),
        &[&args[..], &["--allow-ip", "10.0.0.0/8"]].concat(),
    );
    let (local, _) = create_key(
        db.url(),
        &[&args[..], &["--allow-ip", "127.0.0.1"]].concat(),
    );
    let server = Server::start(db.url(), &[]);
    assert_eq!(key_info(&server, &local).status, 200);
    let reply = key_info(&server, &office);
    assert_eq!(reply.status, 403, "{}", reply.body);
    // X-Forwarded-For from an untrusted peer is ignored.
    let forged = get(
        &server.url("/api/v1/key"),
        &[
            ("Authorization", &format!("Bearer {office}")),
            ("X-Forwarded-For", "10.1.2.3"),
        ],
    );
    assert_eq!(forged.status, 403);
    // Even a revoked key is refused on the address first.
    revoke(&db, office_rec["id"].as_str().unwrap());
    assert_eq!(key_info(&server, &office).status, 403);
}

#[test]
fn forwarded_for_from_a_trusted_proxy_names_the_client() {
    let db = TestDb::sqlite();
    let (office, _) = create_key(
        db.url(),
        &[
            "--owner",
            "a@example.com",
            "--name",
            "o",
            "--allow-ip",
            "10.0.0.0/8",
        ],
    );
    let server = Server::start(db.url(), &["--trusted-proxy", "127.0.0.0/8"]);
    let auth = format!("Bearer {office}");
    let via_proxy = |xff: &str| {
        get(
            &server.url("/api/v1/key"),
            &[("Authorization", &auth), ("X-Forwarded-For", xff)],
        )
        .status
    };
    assert_eq!(via_proxy("10.1.2.3"), 200);
    assert_eq!(
        via_proxy("10.1.2.3, 198.51.100.4"),
        403,
        "rightmost untrusted hop counts"
    );
    assert_eq!(via_proxy("198.51.100.4, 10.1.2.3"), 200);
    // A forged line and the proxy's own line: the proxy's line counts.
    let two_lines = get(
        &server.url("/api/v1/key"),
        &[
            ("Authorization", &auth),
            ("X-Forwarded-For", "10.9.9.9"),
            ("X-Forwarded-For", "198.51.100.4"),
        ],
    );
    assert_eq!(two_lines.status, 403);
    assert_eq!(
        via_proxy("not-an-address"),
        403,
        "an unreadable chain is no client"
    );
}

#[test]
fn over_the_types_rate_limit_gets_429_with_retry_after() {
    let db = TestDb::sqlite();
    let (key, _) = create_key(
        db.url(),
        &[
            "--owner",
            "a@example.com",
            "--name",
            "dash",
            "--type",
            "read-only",
        ],
    );
    let (other, _) = create_key(db.url(), &["--owner", "b@example.com", "--name", "other"]);
    let server = Server::start(db.url(), &[]);
    // 120 in any minute, counted exactly: the 121st is refused.
    let mut allowed = 0;
    let reply = loop {
        let reply = key_info(&server, &key);
        if reply.status != 200 {
            break reply;
        }
        assert_eq!(reply.json()["data"]["can_invoke_models"], false);
        allowed += 1;
        assert!(allowed <= 120, "no 429 after {allowed} requests");
    };
    assert_eq!(allowed, 120, "requests before the limit");
    assert_eq!(reply.status, 429, "{}", reply.body);
    let retry: u64 = reply.retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=61).contains(&retry), "Retry-After {retry}");
    assert_eq!(key_info(&server, &other).status, 200, "limits are per key");
}
