//! `keywarden keys …` driven as a user would, on real SQLite and
//! PostgreSQL stores.

mod common;

use common::db::TestDb;
use common::{create_key, keywarden};
use predicates::prelude::*;
use serde_json::Value;

fn keys(db: &TestDb, args: &[&str]) -> assert_cmd::assert::Assert {
    keywarden()
        .arg("keys")
        .args(args)
        .args(["--database-url", db.url()])
        .assert()
}

fn list_json(db: &TestDb, args: &[&str]) -> Vec<Value> {
    let out = keys(db, &[&["list", "--json"], args].concat()).success();
    serde_json::from_slice::<Value>(&out.get_output().stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// No key in the store, or no store at all (a refused create makes none).
fn assert_nothing_stored(db: &TestDb) {
    if db.sqlite_path().is_some_and(|p| !p.exists()) {
        return;
    }
    assert!(list_json(db, &[]).is_empty());
}

#[test]
fn create_prints_the_key_once_and_nothing_else_holds_it() {
    let db = TestDb::sqlite();
    let out = keys(
        &db,
        &["create", "--owner", "dev@example.com", "--name", "laptop"],
    )
    .success()
    .stderr(predicate::str::contains("only time the key is shown"));
    let key = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let key = key.trim();
    assert!(
        keywarden::keystore::looks_like_key(key.as_bytes()),
        "{key:?}"
    );
    let listed = keys(&db, &["list"]).success();
    let listed = String::from_utf8_lossy(&listed.get_output().stdout).into_owned();
    assert!(
        listed.contains(&format!("{}...{}", &key[..12], &key[70..])),
        "{listed}"
    );
    assert!(
        listed.contains("laptop") && listed.contains("active"),
        "{listed}"
    );
    assert!(!listed.contains(&key[9..]));
    let id = list_json(&db, &[])[0]["id"].as_str().unwrap().to_string();
    let shown = keys(&db, &["show", &id]).success();
    let shown = String::from_utf8_lossy(&shown.get_output().stdout).into_owned();
    assert!(
        shown.contains("600 requests/min") && !shown.contains(&key[9..]),
        "{shown}"
    );
    let raw = std::fs::read(db.sqlite_path().unwrap()).unwrap();
    let wal = std::fs::read(db.sqlite_path().unwrap().with_extension("db-wal")).unwrap_or_default();
    for bytes in [raw, wal] {
        assert!(!String::from_utf8_lossy(&bytes).contains(&key[9..]));
    }
}

#[test]
fn invalid_key_requests_fail_with_the_reason_and_store_nothing() {
    let db = TestDb::sqlite();
    let cases: [(&[&str], &str); 5] = [
        (&["--type", "ephemeral"], "must have an expiry"),
        (&["--type", "scoped"], "--scope"),
        (&["--allow-ip", "10.0.0.0/33"], "not an IP address or CIDR"),
        (&["--expires", "yesterday"], "neither a duration"),
        (&["--type", "admin"], "unknown key type"),
    ];
    for (extra, reason) in cases {
        keys(
            &db,
            &[
                &["create", "--owner", "a@example.com", "--name", "x"],
                extra,
            ]
            .concat(),
        )
        .code(2)
        .stdout("")
        .stderr(predicate::str::contains(reason));
    }
    keys(&db, &["create", "--owner", "nobody", "--name", "x"])
        .code(2)
        .stderr(predicate::str::contains("not an email address"));
    assert_nothing_stored(&db);
}

#[test]
fn env_var_picks_the_database() {
    let db = TestDb::sqlite();
    keywarden()
        .args([
            "keys",
            "create",
            "--owner",
            "a@example.com",
            "--name",
            "env",
        ])
        .env("KEYWARDEN_DATABASE_URL", db.url())
        .assert()
        .success();
    assert_eq!(list_json(&db, &[])[0]["name"], "env");
}

fn revoke_by_id_and_by_stdin_is_idempotent(db: TestDb) {
    let (key, record) = create_key(db.url(), &["--owner", "a@example.com", "--name", "k"]);
    let id = record["id"].as_str().unwrap();
    keys(&db, &["revoke", id, "--reason", "leaked in CI logs"])
        .success()
        .stdout(predicate::str::starts_with(format!("revoked {id}")));
    keywarden()
        .args(["keys", "revoke", "--key-stdin", "--database-url", db.url()])
        .write_stdin(format!("{key}\n"))
        .assert()
        .success()
        .stdout(predicate::str::contains("already revoked"));
    let listed = list_json(&db, &["--state", "revoked"]);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["revocation_reason"], "leaked in CI logs");
    keys(&db, &["revoke", "key_doesnotexist"])
        .code(2)
        .stderr(predicate::str::contains("no key with id"));
}

#[test]
fn revoke_by_id_and_by_stdin_is_idempotent_on_sqlite() {
    revoke_by_id_and_by_stdin_is_idempotent(TestDb::sqlite());
}

#[tokio::test]
async fn revoke_by_id_and_by_stdin_is_idempotent_on_postgres() {
    let db = TestDb::postgres().await;
    tokio::task::spawn_blocking(move || revoke_by_id_and_by_stdin_is_idempotent(db))
        .await
        .unwrap();
}

/// Two processes revoke one key at the same moment: one wins, the other
/// is told it was already revoked, and one revocation record exists.
async fn two_processes_revoke_one_key_once(db: TestDb) {
    let (_, record) = create_key(db.url(), &["--owner", "a@example.com", "--name", "k"]);
    let id = record["id"].as_str().unwrap().to_string();
    let bin = assert_cmd::cargo::cargo_bin("keywarden");
    let children: Vec<_> = (0..4)
        .map(|_| {
            std::process::Command::new(&bin)
                .args(["keys", "revoke", &id, "--json", "--database-url", db.url()])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut outcomes: Vec<String> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success());
            let v: Value = serde_json::from_slice(&out.stdout).unwrap();
            v["outcome"].as_str().unwrap().to_string()
        })
        .collect();
    outcomes.sort();
    assert_eq!(
        outcomes,
        [
            "already_revoked",
            "already_revoked",
            "already_revoked",
            "revoked"
        ]
    );
    let rows = db
        .query_i64(&format!(
            "SELECT COUNT(*) FROM revocations WHERE key_id = '{id}'"
        ))
        .await;
    assert_eq!(rows, [1]);
}

#[tokio::test]
async fn two_processes_revoke_one_key_once_on_sqlite() {
    two_processes_revoke_one_key_once(TestDb::sqlite()).await;
}

#[tokio::test]
async fn two_processes_revoke_one_key_once_on_postgres() {
    two_processes_revoke_one_key_once(TestDb::postgres().await).await;
}

#[test]
fn rotate_with_grace_keeps_the_old_key_until_then() {
    let db = TestDb::sqlite();
    let (old_key, record) = create_key(
        db.url(),
        &[
            "--owner",
            "a@example.com",
            "--name",
            "svc",
            "--type",
            "read-only",
        ],
    );
    let id = record["id"].as_str().unwrap();
    let out = keys(&db, &["rotate", id, "--grace", "1h", "--json"]).success();
    let v: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let new_key = v["key"].as_str().unwrap();
    assert_ne!(new_key, old_key);
    assert_eq!(v["record"]["type"], "read-only");
    let server = common::server::Server::start(db.url(), &[]);
    assert_eq!(
        common::server::key_info(&server, &old_key).status,
        200,
        "grace period"
    );
    assert_eq!(common::server::key_info(&server, new_key).status, 200);
    let listed = keys(&db, &["list"]).success();
    let listed = String::from_utf8_lossy(&listed.get_output().stdout).into_owned();
    assert!(listed.contains("active (revokes"), "{listed}");
    // Rotating the new key without grace revokes it at once.
    let new_id = v["record"]["id"].as_str().unwrap();
    keys(&db, &["rotate", new_id]).success();
    assert_eq!(common::server::key_info(&server, new_key).status, 401);
}

#[test]
fn import_reads_csv_and_jsonl_and_a_bad_line_writes_nothing() {
    let db = TestDb::sqlite();
    let (k1, k2, k3) = (common::gen_key(), common::gen_key(), common::gen_key());
    let h2 = keywarden::secret::sha256_hex(k2.as_bytes());
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("keys.csv");
    std::fs::write(
        &csv,
        format!("key,sha256,name,owner_email\n{k1},,one,a@example.com\n,{h2},two,b@example.com\n"),
    )
    .unwrap();
    keys(&db, &["import", csv.to_str().unwrap()])
        .success()
        .stdout(predicate::str::contains("imported 2 keys"));
    keys(&db, &["import", csv.to_str().unwrap()])
        .success()
        .stdout(predicate::str::contains("imported 0 keys; 2 already"));
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        format!(
            "{{\"key\":\"{k3}\",\"name\":\"three\",\"owner_email\":\"c@example.com\"}}\n\
             {{\"key\":\"{k3}x\",\"name\":\"four\",\"owner_email\":\"c@example.com\"}}\n"
        ),
    )
    .unwrap();
    keys(&db, &["import", bad.to_str().unwrap()])
        .code(2)
        .stderr(predicate::str::contains("line 2"))
        .stderr(predicate::str::contains(&k3[9..]).not());
    assert_eq!(
        list_json(&db, &[]).len(),
        2,
        "nothing of the bad file is written"
    );
    let server = common::server::Server::start(db.url(), &[]);
    assert_eq!(common::server::key_info(&server, &k1).status, 200);
    assert_eq!(common::server::key_info(&server, &k2).status, 200);
}

/// Addresses the mailer would read as another address, or as several.
const TRICK_OWNERS: [&str; 6] = [
    "victim<evil@attacker.test>",
    "Victim <evil@attacker.test>",
    "a@example.test,evil@attacker.test",
    "a@example.test, evil@attacker.test",
    "\"a@example.test\" <evil@attacker.test>",
    "a@example.test\r\nBcc: evil@attacker.test",
];

#[tokio::test]
async fn an_owner_address_must_be_exactly_one_plain_address() {
    let db = TestDb::sqlite();
    for owner in TRICK_OWNERS {
        keys(&db, &["create", "--owner", owner, "--name", "x"])
            .code(2)
            .stdout("")
            .stderr(predicate::str::contains("exactly one plain email address"));
    }
    // Through import too: a bad row writes nothing of the file.
    let dir = tempfile::tempdir().unwrap();
    for owner in TRICK_OWNERS {
        let file = dir.path().join("keys.jsonl");
        let line = serde_json::json!({"key": common::gen_key(), "name": "x", "owner_email": owner});
        std::fs::write(&file, format!("{line}\n")).unwrap();
        keys(&db, &["import", file.to_str().unwrap()])
            .code(2)
            .stderr(predicate::str::contains("exactly one plain email address"));
    }
    assert_nothing_stored(&db);
    // A plain address, even an unusual one, is kept as given.
    let (_, record) = create_key(
        db.url(),
        &["--owner", "o'brien+ci@example.co.uk", "--name", "x"],
    );
    assert_eq!(record["owner_email"], "o'brien+ci@example.co.uk");
    // A key from before addresses were checked is not rotated into a new
    // key that would mail someone else.
    let id = record["id"].as_str().unwrap();
    db.exec(&format!(
        "UPDATE keys SET owner_email = 'victim<evil@attacker.test>' WHERE id = '{id}'"
    ))
    .await;
    keys(&db, &["rotate", id])
        .code(2)
        .stdout("")
        .stderr(predicate::str::contains("exactly one plain email address"));
    assert_eq!(list_json(&db, &[]).len(), 1);
}

#[tokio::test]
async fn names_with_control_characters_are_refused_and_old_ones_print_escaped() {
    let db = TestDb::sqlite();
    for name in [
        "\u{1b}[2Jroot",
        "a\nb",
        "a\rb",
        "tab\there",
        "bidi\u{202e}txt",
    ] {
        keys(&db, &["create", "--owner", "a@example.com", "--name", name])
            .code(2)
            .stdout("")
            .stderr(predicate::str::contains("control character"));
    }
    assert_nothing_stored(&db);
    let (_, record) = create_key(db.url(), &["--owner", "a@example.com", "--name", "fine"]);
    let id = record["id"].as_str().unwrap();
    // A row written before names were checked.
    db.exec(&format!(
        "UPDATE keys SET name = 'x\u{1b}[2J\r\nforged  row  active', team = 't\u{1b}]0;pwn\u{7}' \
         WHERE id = '{id}'"
    ))
    .await;
    for args in [vec!["list"], vec!["show", id]] {
        let out = keys(&db, &args).success();
        let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
        assert!(
            !text.contains('\u{1b}') && !text.contains('\r') && !text.contains('\u{7}'),
            "{args:?}: {text:?}"
        );
        assert!(
            !text.lines().any(|l| l.starts_with("forged")),
            "{args:?}: no forged row: {text}"
        );
        assert!(
            text.contains("\\u{1b}[2J") || text.contains("\\x1b[2J"),
            "{text}"
        );
    }
    // JSON keeps the real value, escaped by JSON itself.
    assert_eq!(
        list_json(&db, &[])[0]["name"],
        "x\u{1b}[2J\r\nforged  row  active"
    );
}

#[test]
fn commands_that_read_the_store_never_create_one() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("nope.db").display());
    for args in [
        vec!["keys", "list"],
        vec!["keys", "show", "key_0123456789ab"],
        vec!["keys", "revoke", "key_0123456789ab"],
        vec!["keys", "rotate", "key_0123456789ab"],
        vec!["outbox", "list"],
        vec!["outbox", "retry", "1"],
        vec!["outbox", "run", "--once"],
    ] {
        keywarden()
            .args(&args)
            .args(["--database-url", &url])
            .assert()
            .code(2)
            .stdout("")
            .stderr(predicate::str::contains(format!(
                "no key store at {url}: create a key first"
            )));
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing created"
    );
}

#[test]
fn a_serve_that_cannot_listen_leaves_nothing_behind() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("k.db").display());
    let mail = dir.path().join("mail");
    for (listen, admin) in [
        (port.as_str(), "127.0.0.1:0"),
        ("127.0.0.1:0", port.as_str()),
    ] {
        keywarden()
            .args(["serve", "--listen", listen, "--admin-listen", admin])
            .args([
                "--database-url",
                &url,
                "--github-api-url",
                "http://127.0.0.1:9",
            ])
            .arg("--mail-dir")
            .arg(&mail)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(format!("cannot listen on {port}")));
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no store, no mail dir"
    );
}
