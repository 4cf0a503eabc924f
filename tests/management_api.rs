//! OpenRouter's key-management API (`/api/v1/keys`) and the full
//! `GET /api/v1/key` shape, on a real `keywarden serve`, with OpenRouter's
//! official Python SDK as the client and with raw requests for every
//! refusal.

mod common;

use common::db::TestDb;
use common::github::Signer;
use common::server::{Reply, Server, call, key_info, post};
use common::{create_key, keywarden};
use serde_json::{Value, json};
use std::path::PathBuf;

/// The Python with `openrouter==1.3.84` installed (`.ci/run` makes it).
fn sdk_python() -> PathBuf {
    let python = std::env::var_os("KEYWARDEN_TEST_OPENROUTER_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache"));
            cache.join("keywarden-ci/openrouter-venv/bin/python")
        });
    assert!(
        python.is_file(),
        "{} is missing: the SDK test needs OpenRouter's SDK in a venv \
         (.ci/run installs openrouter==1.3.84 there, or set KEYWARDEN_TEST_OPENROUTER_PYTHON)",
        python.display()
    );
    python
}

fn management_key(db: &TestDb) -> (String, Value) {
    create_key(
        db.url(),
        &[
            "--owner",
            "ops@example.com",
            "--name",
            "admin",
            "--management",
        ],
    )
}

fn bearer(key: &str) -> (&'static str, String) {
    ("Authorization", format!("Bearer {key}"))
}

fn api(server: &Server, method: &str, path: &str, key: &str, body: Option<&str>) -> Reply {
    let (name, value) = bearer(key);
    call(method, &server.url(path), &[(name, &value)], body)
}

fn run_sdk(db: &TestDb) {
    let (admin, _) = management_key(db);
    let (ordinary, _) = create_key(
        db.url(),
        &[
            "--owner",
            "dev@example.com",
            "--name",
            "app",
            "--credit-limit",
            "20",
            "--expires",
            "30d",
        ],
    );
    let server = Server::start(db.url(), &[]);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/openrouter_keys.py");
    let out = std::process::Command::new(sdk_python())
        .arg(&script)
        .arg(server.url("/api/v1"))
        .arg(&admin)
        .arg(&ordinary)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("all steps passed"),
        "the SDK failed:\n{stdout}\n{stderr}\nserver log:\n{}",
        server.log_text()
    );
    assert!(!stderr.contains("ResponseValidationError"), "{stderr}");
}

#[test]
fn openrouters_sdk_manages_keys_on_sqlite() {
    run_sdk(&TestDb::sqlite());
}

#[tokio::test(flavor = "multi_thread")]
async fn openrouters_sdk_manages_keys_on_postgres() {
    let db = TestDb::postgres().await;
    tokio::task::spawn_blocking(move || run_sdk(&db))
        .await
        .unwrap();
}

#[test]
fn the_key_check_has_every_field_openrouter_gives() {
    let db = TestDb::sqlite();
    let (key, record) = create_key(
        db.url(),
        &[
            "--owner",
            "dev@example.com",
            "--owner-id",
            "user_7",
            "--name",
            "agent",
            "--type",
            "team",
            "--team",
            "research",
            "--credit-limit",
            "10",
            "--limit-reset",
            "weekly",
        ],
    );
    let server = Server::start(db.url(), &[]);
    let reply = key_info(&server, &key);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let data = &reply.json()["data"];
    for field in [
        "allowed_data_regions",
        "budgets",
        "byok_usage",
        "byok_usage_daily",
        "byok_usage_monthly",
        "byok_usage_weekly",
        "creator_user_id",
        "effective_budget",
        "free_model_daily_requests",
        "include_byok_in_limit",
        "is_free_tier",
        "is_management_key",
        "is_provisioning_key",
        "label",
        "limit",
        "limit_remaining",
        "limit_reset",
        "organization_id",
        "rate_limit",
        "usage",
        "usage_daily",
        "usage_monthly",
        "usage_weekly",
        "workspace_id",
        "expires_at",
    ] {
        assert!(data.get(field).is_some(), "no {field} in {data}");
    }
    assert_eq!(data["limit_reset"], "weekly");
    assert_eq!(data["creator_user_id"], "user_7");
    assert_eq!(data["workspace_id"], "research");
    assert_eq!(data["is_management_key"], false);
    assert_eq!(data["rate_limit"]["requests"], 200);
    assert!(data["rate_limit"]["note"].is_string());
    assert_eq!(data["budgets"][0]["scope"], "key_limit");
    assert_eq!(data["budgets"][0]["reset_interval"], "weekly");
    assert_eq!(data["budgets"][0]["limit_usd"], 10.0);
    assert_eq!(data["effective_budget"], data["budgets"][0]);
    // keywarden's own fields stay, under their own names.
    assert_eq!(data["type"], "team");
    assert_eq!(data["team"], "research");
    assert_eq!(data["can_invoke_models"], true);
    assert_eq!(data["label"], record["label"]);
}

#[test]
fn a_management_key_administers_and_never_invokes_models() {
    let db = TestDb::sqlite();
    let (admin, record) = management_key(&db);
    assert_eq!(record["is_management_key"], true);
    let server = Server::start(db.url(), &[]);
    let data = key_info(&server, &admin).json()["data"].clone();
    assert_eq!(data["is_management_key"], true);
    assert_eq!(data["can_invoke_models"], false);
    assert_eq!(
        api(&server, "GET", "/api/v1/keys", &admin, None).status,
        200
    );
}

#[test]
fn the_management_api_refuses_what_openrouter_refuses() {
    let db = TestDb::sqlite();
    let (admin, _) = management_key(&db);
    let (ordinary, ordinary_rec) =
        create_key(db.url(), &["--owner", "dev@example.com", "--name", "app"]);
    let hash = ordinary_rec["key_hash"].as_str().unwrap().to_string();
    let server = Server::start(db.url(), &[]);
    let error = |r: &Reply| r.json()["error"].clone();

    // An ordinary key: 403 in OpenRouter's words and body.
    let r = api(&server, "GET", "/api/v1/keys", &ordinary, None);
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        error(&r),
        json!({"code": 403, "message": "Only management keys can perform this operation"})
    );
    let r = api(
        &server,
        "POST",
        "/api/v1/keys",
        &ordinary,
        Some(r#"{"name":"x"}"#),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    // Unknown, missing and malformed keys: 401.
    let unknown = common::gen_key();
    for key in [unknown.as_str(), "nonsense"] {
        let r = api(&server, "GET", "/api/v1/keys", key, None);
        assert_eq!(r.status, 401, "{}", r.body);
        assert_eq!(error(&r)["code"], 401);
    }
    let r = call("GET", &server.url("/api/v1/keys"), &[], None);
    assert_eq!(r.status, 401);

    // expires_at must be UTC, with seconds.
    for at in ["2030-01-01T00:00:00+02:00", "2030-01-01T00:00Z", "tomorrow"] {
        let body = json!({"name": "x", "expires_at": at}).to_string();
        let r = api(&server, "POST", "/api/v1/keys", &admin, Some(&body));
        assert_eq!(r.status, 400, "{at}: {}", r.body);
        assert!(
            error(&r)["message"]
                .as_str()
                .unwrap()
                .contains("expires_at"),
            "{}",
            r.body
        );
    }
    // Unknown fields, named (escaped) in the message.
    let r = api(
        &server,
        "POST",
        "/api/v1/keys",
        &admin,
        Some(r#"{"name":"x","limitt":5}"#),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("limitt"), "{}", r.body);
    let r = api(
        &server,
        "PATCH",
        &format!("/api/v1/keys/{hash}"),
        &admin,
        Some("{\"disabled\":true,\"evil\u{1b}[2J\":1}"),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        !r.body.contains('\u{1b}'),
        "control bytes echoed: {}",
        r.body
    );
    // Hostile or impossible values.
    for body in [
        json!({"name": ""}),
        json!({"name": "a\nb"}),
        json!({"name": "x", "limit": -1}),
        json!({"name": "x", "limit_reset": "hourly"}),
        json!({"name": "x", "type": "scoped"}),
    ] {
        let r = api(
            &server,
            "POST",
            "/api/v1/keys",
            &admin,
            Some(&body.to_string()),
        );
        assert_eq!(r.status, 400, "{body}: {}", r.body);
    }
    let r = api(&server, "POST", "/api/v1/keys", &admin, Some("{not json"));
    assert_eq!(r.status, 400, "{}", r.body);
    // offset out of range.
    for offset in ["-1", "x", "99999999999999999999"] {
        let r = api(
            &server,
            "GET",
            &format!("/api/v1/keys?offset={offset}"),
            &admin,
            None,
        );
        assert_eq!(r.status, 400, "{offset}: {}", r.body);
    }
    // A hash that is not ours: 404.
    let missing = format!("/api/v1/keys/{}", "ab".repeat(32));
    assert_eq!(api(&server, "GET", &missing, &admin, None).status, 404);
    assert_eq!(api(&server, "DELETE", &missing, &admin, None).status, 404);

    // A key revoked because it leaked can never be re-enabled.
    keywarden()
        .args(["keys", "revoke", ordinary_rec["id"].as_str().unwrap()])
        .args([
            "--reason",
            "github-secret-scanning",
            "--database-url",
            db.url(),
        ])
        .assert()
        .success();
    let r = api(
        &server,
        "PATCH",
        &format!("/api/v1/keys/{hash}"),
        &admin,
        Some(r#"{"disabled":false}"#),
    );
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        error(&r)["message"].as_str().unwrap().contains("revoked"),
        "{}",
        r.body
    );
    assert_eq!(key_info(&server, &ordinary).status, 401);
}

#[test]
fn keys_are_listed_newest_first_a_hundred_a_page() {
    let db = TestDb::sqlite();
    let (admin, _) = management_key(&db);
    let server = Server::start(db.url(), &[]);
    let mut made = Vec::new();
    for i in 0..102 {
        let body = json!({"name": format!("k{i}")}).to_string();
        let r = api(&server, "POST", "/api/v1/keys", &admin, Some(&body));
        assert_eq!(r.status, 201, "{}", r.body);
        let v = r.json();
        assert!(v["key"].as_str().unwrap().starts_with("sk-or-v1-"));
        made.push(v["data"]["hash"].as_str().unwrap().to_string());
    }
    let page = |offset: usize| -> Vec<String> {
        let r = api(
            &server,
            "GET",
            &format!("/api/v1/keys?offset={offset}"),
            &admin,
            None,
        );
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["hash"].as_str().unwrap().to_string())
            .collect()
    };
    let first = page(0);
    assert_eq!(first.len(), 100);
    assert_eq!(first[0], made[101], "most recent first");
    let second = page(100);
    // 102 made + the management key = 103.
    assert_eq!(second.len(), 3);
    assert!(page(1000).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn api_create_takes_keywardens_extensions() {
    let db = TestDb::sqlite();
    let (admin, _) = management_key(&db);
    let server = Server::start(db.url(), &[]);
    let body = json!({
        "name": "scoped one",
        "type": "scoped",
        "scopes": ["anthropic/*"],
        "allowed_ips": ["10.0.0.0/8"],
        "owner_email": "team@example.com",
        "include_byok_in_limit": true,
    });
    let r = api(
        &server,
        "POST",
        "/api/v1/keys",
        &admin,
        Some(&body.to_string()),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let data = r.json()["data"].clone();
    assert_eq!(data["type"], "scoped");
    assert_eq!(data["scopes"], json!(["anthropic/*"]));
    assert_eq!(data["allowed_ips"], json!(["10.0.0.0/8"]));
    assert_eq!(data["owner_email"], "team@example.com");
    assert_eq!(data["include_byok_in_limit"], true);
    // The key is stored as a hash only: the raw key is nowhere in the file.
    let key = r.json()["key"].as_str().unwrap().to_string();
    assert!(!db.raw_contents().await.contains(&key[9..]));
}

#[test]
fn disabling_is_recorded_and_shown_by_the_cli() {
    let db = TestDb::sqlite();
    let (key, record) = create_key(db.url(), &["--owner", "dev@example.com", "--name", "app"]);
    let id = record["id"].as_str().unwrap();
    keywarden()
        .args(["keys", "disable", id, "--database-url", db.url()])
        .assert()
        .success();
    let show = keywarden()
        .args(["keys", "show", id, "--json", "--database-url", db.url()])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(v["state"], "disabled");
    assert!(v["disabled_at"].is_string(), "{v}");
    assert!(v["disabled_by"].as_str().unwrap().contains("cli"), "{v}");
    let list = keywarden()
        .args([
            "keys",
            "list",
            "--state",
            "disabled",
            "--database-url",
            db.url(),
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&list.stdout).contains(id));
    let server = Server::start(db.url(), &[]);
    assert_eq!(key_info(&server, &key).status, 401);
    keywarden()
        .args(["keys", "enable", id, "--database-url", db.url()])
        .assert()
        .success();
    assert_eq!(key_info(&server, &key).status, 200);
}

#[test]
fn the_cli_manages_a_remote_server() {
    let db = TestDb::sqlite();
    let (admin, _) = management_key(&db);
    let server = Server::start(db.url(), &[]);
    let remote = |args: &[&str]| -> (bool, Value, String) {
        let out = keywarden()
            .arg("keys")
            .args(args)
            .args(["--json", "--server", &server.base])
            .env("KEYWARDEN_MANAGEMENT_KEY", &admin)
            .env_remove("KEYWARDEN_DATABASE_URL")
            // No store here: every call must go through the API.
            .current_dir(tempfile::tempdir().unwrap().path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (out.status.success(), v, stderr)
    };
    let (ok, made, err) = remote(&["create", "--owner", "dev@example.com", "--name", "remote"]);
    assert!(ok, "{err}");
    let key = made["key"].as_str().unwrap().to_string();
    let id = made["record"]["id"].as_str().unwrap().to_string();
    assert_eq!(key_info(&server, &key).status, 200);
    let (ok, listed, err) = remote(&["list"]);
    assert!(ok, "{err}");
    assert!(listed.to_string().contains(&id), "{listed}");
    let (ok, shown, err) = remote(&["show", &id]);
    assert!(ok, "{err}");
    assert_eq!(shown["name"], "remote");
    let (ok, _, err) = remote(&["disable", &id]);
    assert!(ok, "{err}");
    assert_eq!(key_info(&server, &key).status, 401);
    let (ok, _, err) = remote(&["enable", &id]);
    assert!(ok, "{err}");
    assert_eq!(key_info(&server, &key).status, 200);
    let (ok, rotated, err) = remote(&["rotate", &id]);
    assert!(ok, "{err}");
    let new_key = rotated["key"].as_str().unwrap().to_string();
    assert_eq!(key_info(&server, &key).status, 401);
    assert_eq!(key_info(&server, &new_key).status, 200);
    let new_id = rotated["record"]["id"].as_str().unwrap().to_string();
    let (ok, _, err) = remote(&["revoke", &new_id]);
    assert!(ok, "{err}");
    assert_eq!(key_info(&server, &new_key).status, 401);
    // A wrong management key: one clear line, not a stack of causes.
    let out = keywarden()
        .args(["keys", "list", "--server", &server.base])
        .env("KEYWARDEN_MANAGEMENT_KEY", common::gen_key())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("401"), "{stderr}");
    // No management key at all.
    let out = keywarden()
        .args(["keys", "list", "--server", &server.base])
        .env_remove("KEYWARDEN_MANAGEMENT_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("KEYWARDEN_MANAGEMENT_KEY"));
}

fn leak_report(token: &str) -> Vec<u8> {
    serde_json::to_vec(&json!([{"token": token, "type": "openrouter_api_key",
        "url": "https://github.com/acme/app/blob/abc/.env", "source": "commit"}]))
    .unwrap()
}

async fn revocation_wins_over_concurrent_patches(db: TestDb) {
    let (admin, _) = management_key(&db);
    let signer = Signer::new();
    let (server, _keys) = common::github::serve_trusting(db.url(), &signer, &[]);
    let server = std::sync::Arc::new(server);
    for round in 0..10 {
        let (key, record) = create_key(
            db.url(),
            &["--owner", "dev@example.com", "--name", &format!("r{round}")],
        );
        let hash = record["key_hash"].as_str().unwrap().to_string();
        let path = format!("/api/v1/keys/{hash}");
        let mut handles = Vec::new();
        for body in [
            r#"{"disabled":true}"#,
            r#"{"disabled":false,"name":"renamed"}"#,
        ] {
            let (server, admin, path) = (server.clone(), admin.clone(), path.clone());
            handles.push(std::thread::spawn(move || {
                api(&server, "PATCH", &path, &admin, Some(body)).status
            }));
        }
        let report = leak_report(&key);
        let (server2, signer_sig, id) = (server.clone(), signer.sign(&report), signer.id.clone());
        let github = std::thread::spawn(move || {
            post(
                &server2.url("/github/secret-scanning"),
                &[
                    ("Content-Type", "application/json"),
                    ("Github-Public-Key-Identifier", &id),
                    ("Github-Public-Key-Signature", &signer_sig),
                ],
                &report,
            )
            .status
        });
        for h in handles {
            let status = h.join().unwrap();
            // Before the revocation: 200; after it, enabling is refused.
            assert!(status == 200 || status == 409, "PATCH answered {status}");
        }
        assert_eq!(github.join().unwrap(), 200);
        // One consistent state: revoked, answering 401, and enabling refused.
        assert_eq!(key_info(&server, &key).status, 401);
        let r = api(&server, "GET", &path, &admin, None);
        let data = r.json()["data"].clone();
        assert_eq!(data["disabled"], true, "{data}");
        assert_eq!(data["state"], "revoked", "{data}");
        let r = api(
            &server,
            "PATCH",
            &path,
            &admin,
            Some(r#"{"disabled":false}"#),
        );
        assert_eq!(r.status, 409, "{}", r.body);
        let id = record["id"].as_str().unwrap();
        assert_eq!(
            db.query_i64(&format!(
                "SELECT COUNT(*) FROM revocations WHERE key_id = '{id}'"
            ))
            .await,
            vec![1]
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn revocation_wins_over_concurrent_patches_on_sqlite() {
    revocation_wins_over_concurrent_patches(TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn revocation_wins_over_concurrent_patches_on_postgres() {
    revocation_wins_over_concurrent_patches(TestDb::postgres().await).await;
}

fn report_leak(server: &Server, signer: &Signer, token: &str) -> u16 {
    let report = leak_report(token);
    post(
        &server.url("/github/secret-scanning"),
        &[
            ("Content-Type", "application/json"),
            ("Github-Public-Key-Identifier", &signer.id),
            ("Github-Public-Key-Signature", &signer.sign(&report)),
        ],
        &report,
    )
    .status
}

#[test]
fn a_leaked_management_key_is_revoked_like_any_other() {
    let db = TestDb::sqlite();
    let (admin, record) = management_key(&db);
    let signer = Signer::new();
    let (server, _keys) = common::github::serve_trusting(db.url(), &signer, &[]);
    assert_eq!(
        api(&server, "GET", "/api/v1/keys", &admin, None).status,
        200
    );
    assert_eq!(report_leak(&server, &signer, &admin), 200);
    let r = api(&server, "GET", "/api/v1/keys", &admin, None);
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(key_info(&server, &admin).status, 401);
    let show = keywarden()
        .args(["keys", "show", record["id"].as_str().unwrap(), "--json"])
        .args(["--database-url", db.url()])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(v["state"], "revoked", "{v}");
    assert_eq!(v["revocation_reason"], "github-secret-scanning", "{v}");
}

#[test]
fn a_management_key_is_rate_limited_like_its_type() {
    let db = TestDb::sqlite();
    let (admin, _) = create_key(
        db.url(),
        &[
            "--owner",
            "ops@example.com",
            "--name",
            "admin",
            "--management",
            "--type",
            "read-only",
        ],
    );
    let server = Server::start(db.url(), &[]);
    // read-only: 120 requests a minute, the whole minute's worth at once,
    // then 2 more a second.
    let started = std::time::Instant::now();
    let mut ok = 0;
    let mut limited = None;
    for _ in 0..400 {
        let r = api(&server, "GET", "/api/v1/keys", &admin, None);
        match r.status {
            200 => ok += 1,
            429 => {
                limited = Some(r);
                break;
            }
            other => panic!("answered {other}: {}", r.body),
        }
    }
    let refilled = (started.elapsed().as_secs_f64() * 2.0).ceil() as usize;
    assert!(
        (120..=121 + refilled).contains(&ok),
        "{ok} answers before the limit ({refilled} refilled)"
    );
    let limited = limited.expect("the limit was never reached");
    assert_eq!(limited.json()["error"]["code"], 429);
}

async fn limit_remaining_follows_the_reset_window(db: TestDb) {
    let (key, record) = create_key(
        db.url(),
        &[
            "--owner",
            "dev@example.com",
            "--name",
            "daily",
            "--credit-limit",
            "10",
            "--limit-reset",
            "daily",
        ],
    );
    let id = record["id"].as_str().unwrap().to_string();
    let server = Server::start(db.url(), &[]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let spend = |at: i64| {
        format!(
            "UPDATE keys SET usage = 7, usage_daily = 3, usage_weekly = 5, \
             usage_monthly = 6, usage_at = {at} WHERE id = '{id}'"
        )
    };
    // Spent today: 3 of the daily 10.
    db.exec(&spend(now)).await;
    let data = key_info(&server, &key).json()["data"].clone();
    assert_eq!(data["limit_remaining"], 7.0, "{data}");
    assert_eq!(data["usage_daily"], 3.0, "{data}");
    assert_eq!(data["usage"], 7.0, "{data}");
    assert_eq!(data["effective_budget"]["spend_usd"], 3.0, "{data}");
    assert_eq!(
        data["effective_budget"]["reset_interval"], "daily",
        "{data}"
    );
    // Last spent two days ago: the day has reset.
    db.exec(&spend(now - 2 * 86_400)).await;
    let data = key_info(&server, &key).json()["data"].clone();
    assert_eq!(data["limit_remaining"], 10.0, "{data}");
    assert_eq!(data["usage_daily"], 0.0, "{data}");
    // Without a reset the lifetime usage counts.
    let (admin, _) = management_key(&db);
    let hash = record["key_hash"].as_str().unwrap();
    let r = api(
        &server,
        "PATCH",
        &format!("/api/v1/keys/{hash}"),
        &admin,
        Some(r#"{"limit_reset":null}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["data"]["limit_remaining"], 3.0, "{}", r.body);
    assert_eq!(r.json()["data"]["limit_reset"], Value::Null, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn limit_remaining_follows_the_reset_window_on_sqlite() {
    limit_remaining_follows_the_reset_window(TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn limit_remaining_follows_the_reset_window_on_postgres() {
    limit_remaining_follows_the_reset_window(TestDb::postgres().await).await;
}

#[test]
fn management_keys_are_not_changed_through_the_api() {
    let db = TestDb::sqlite();
    let (admin, _) = management_key(&db);
    let (_, other) = create_key(
        db.url(),
        &[
            "--owner",
            "ops2@example.com",
            "--name",
            "admin2",
            "--management",
        ],
    );
    let server = Server::start(db.url(), &[]);
    let other_hash = other["key_hash"].as_str().unwrap();
    let path = format!("/api/v1/keys/{other_hash}");
    // Visible, but one management key never rotates (mints a successor to),
    // disables, revokes or deletes another, or itself.
    assert_eq!(api(&server, "GET", &path, &admin, None).status, 200);
    for (method, suffix, body) in [
        ("PATCH", "", Some(r#"{"disabled":true}"#)),
        ("DELETE", "", None),
        ("POST", "/rotate", Some(r#"{"grace_seconds":0}"#)),
        ("POST", "/revoke", Some("{}")),
    ] {
        let r = api(&server, method, &format!("{path}{suffix}"), &admin, body);
        assert_eq!(r.status, 403, "{method} {suffix}: {}", r.body);
        assert_eq!(r.json()["error"]["code"], 403);
    }
    let show = keywarden()
        .args(["keys", "show", other["id"].as_str().unwrap(), "--json"])
        .args(["--database-url", db.url()])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(v["state"], "active", "{v}");
}

#[test]
fn rotation_through_the_api_is_bounded_and_refuses_keys_that_do_not_work() {
    let db = TestDb::sqlite();
    let (admin, _) = management_key(&db);
    let (_, record) = create_key(db.url(), &["--owner", "dev@example.com", "--name", "app"]);
    let server = Server::start(db.url(), &[]);
    let hash = record["key_hash"].as_str().unwrap();
    let rotate = format!("/api/v1/keys/{hash}/rotate");
    // A grace period of decades would keep a replaced key alive for them.
    let r = api(
        &server,
        "POST",
        &rotate,
        &admin,
        Some(r#"{"grace_seconds":4294967295}"#),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("grace_seconds"), "{}", r.body);
    // A disabled key is not rotated into a working one.
    let r = api(
        &server,
        "PATCH",
        &format!("/api/v1/keys/{hash}"),
        &admin,
        Some(r#"{"disabled":true}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = api(&server, "POST", &rotate, &admin, Some("{}"));
    assert_eq!(r.status, 409, "{}", r.body);
    // Bodies are JSON objects, never arrays read field by field.
    let r = api(
        &server,
        "PATCH",
        &format!("/api/v1/keys/{hash}"),
        &admin,
        Some(r#"["renamed", false]"#),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let r = api(&server, "POST", "/api/v1/keys", &admin, Some(r#"["made"]"#));
    assert_eq!(r.status, 400, "{}", r.body);
    // Echoed values are capped.
    let long = json!({"name": "x", "type": "t".repeat(60_000)}).to_string();
    let r = api(&server, "POST", "/api/v1/keys", &admin, Some(&long));
    assert_eq!(r.status, 400);
    assert!(r.body.len() < 1_000, "{} bytes of error", r.body.len());
}

/// `keywarden keys … --server` against a stand-in that answers `reply`.
fn remote_against(reply: &'static str, args: &[&str]) -> std::process::Output {
    let hostile = common::server::StandIn::start(Some(reply));
    keywarden()
        .arg("keys")
        .args(args)
        .args(["--server", &hostile.base])
        .env("KEYWARDEN_MANAGEMENT_KEY", common::gen_key())
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap()
}

#[test]
fn the_remote_cli_never_prints_a_hostile_servers_control_characters() {
    const HOSTILE: &str = concat!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n",
        r#"{"data": {"id": "key_abc", "state": "\u001b]0;PWNED\u0007\u001b[2J\u009b\u202e","#,
        r#""\u001b[31mname": "\u007f"}}"#
    );
    for args in [&["show", "key_abc"][..], &["show", "key_abc", "--json"]] {
        let out = remote_against(HOSTILE, args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("key_abc"), "{stdout}");
        for bad in ['\u{1b}', '\u{7}', '\u{9b}', '\u{202e}', '\u{7f}'] {
            assert!(
                !stdout.contains(bad),
                "{args:?} printed {bad:?}: {stdout:?}"
            );
        }
    }
}

#[test]
fn the_remote_cli_refuses_answers_that_are_not_keys() {
    const ARRAY: &str =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n[1,2,3]";
    let out = remote_against(ARRAY, &["show", "key_abc"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("did not answer with a key"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // A server that never ends its pages: each page is full.
    let out = remote_against(ARRAY, &["list"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    // A URL that would carry the key somewhere else is refused.
    for url in [
        "http://user:pw@127.0.0.1:9",
        "http://127.0.0.1:9/?x=1",
        "ftp://host",
    ] {
        let out = keywarden()
            .args(["keys", "list", "--server", url])
            .env("KEYWARDEN_MANAGEMENT_KEY", common::gen_key())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{url}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("pw@"), "{stderr}");
    }
}
