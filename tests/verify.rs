//! `--verify`: liveness checks against a real `keywarden serve`, and a
//! loopback stand-in where a provider's misbehaviour is needed.

mod common;

use common::db::TestDb;
use common::server::{Server, StandIn};
use common::{create_key, keywarden, temp_tree};
use serde_json::Value;

fn scan_verify(dir: &std::path::Path, base: &str, format: &str, extra: &[&str]) -> String {
    let out = keywarden()
        .current_dir(dir)
        .args([
            "scan",
            ".",
            "-q",
            "--verify",
            "--verify-url",
            base,
            "-f",
            format,
        ])
        .args(extra)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn findings_are_marked_live_or_invalid_by_a_real_key_check() {
    let db = TestDb::sqlite();
    let owner = ["--owner", "a@example.com", "--name", "n"];
    let (live, _) = create_key(db.url(), &owner);
    let (revoked, rec) = create_key(db.url(), &owner);
    keywarden()
        .args([
            "keys",
            "revoke",
            rec["id"].as_str().unwrap(),
            "--database-url",
            db.url(),
        ])
        .assert()
        .success();
    let never = common::gen_key();
    let dir = temp_tree(&[
        ("live.env", format!("KEY={live}\n").as_bytes()),
        ("revoked.env", format!("KEY={revoked}\n").as_bytes()),
        ("never.env", format!("KEY={never}\n").as_bytes()),
    ]);
    let server = Server::start(db.url(), &[]);
    let json: Vec<Value> =
        serde_json::from_str(&scan_verify(dir.path(), &server.base, "json", &[])).unwrap();
    let status = |path: &str| {
        json.iter()
            .find(|f| f["path"] == path)
            .map(|f| f["verification"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(status("live.env"), "live");
    assert_eq!(status("revoked.env"), "invalid");
    assert_eq!(status("never.env"), "invalid");

    let text = scan_verify(dir.path(), &server.base, "text", &[]);
    assert!(
        text.contains("[live]") && text.contains("[invalid]"),
        "{text}"
    );
    let github = scan_verify(dir.path(), &server.base, "github", &[]);
    assert!(github.contains("(verified live)"), "{github}");
    let markdown = scan_verify(dir.path(), &server.base, "markdown", &[]);
    assert!(
        markdown.contains("| Status |") && markdown.contains(" live |"),
        "{markdown}"
    );
    let jsonl = scan_verify(dir.path(), &server.base, "jsonl", &[]);
    assert_eq!(
        jsonl.matches("\"verification\":\"invalid\"").count(),
        2,
        "{jsonl}"
    );
    let sarif: Value =
        serde_json::from_str(&scan_verify(dir.path(), &server.base, "sarif", &[])).unwrap();
    let props: Vec<&str> = sarif["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["properties"]["verification"].as_str().unwrap())
        .collect();
    assert_eq!(
        props.iter().filter(|p| **p == "live").count(),
        1,
        "{props:?}"
    );
    for report in [&text, &github, &markdown, &jsonl] {
        assert!(!report.contains(&live[9..]), "the key stays redacted");
    }
}

#[test]
fn history_findings_are_verified_too() {
    let db = TestDb::sqlite();
    let (live, _) = create_key(db.url(), &["--owner", "a@example.com", "--name", "n"]);
    let repo = common::GitRepo::new();
    repo.commit(&[("config.env", Some(&format!("KEY={live}\n")))], "add key");
    repo.commit(&[("config.env", Some("KEY=\n"))], "remove key");
    let server = Server::start(db.url(), &[]);
    let out = keywarden()
        .args([
            "history",
            repo.path().to_str().unwrap(),
            "-q",
            "-f",
            "json",
            "--verify",
        ])
        .args(["--verify-url", &server.base])
        .output()
        .unwrap();
    let json: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json.len(), 1);
    assert_eq!(json[0]["verification"], "live");
}

const OK: &str = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\nconnection: close\r\n\r\n{\"data\":{}}";

#[test]
fn each_distinct_secret_is_sent_once_in_the_authorization_header_only() {
    let (a, b) = (common::gen_key(), common::gen_key());
    let dir = temp_tree(&[
        ("one.env", format!("A={a}\nB={b}\n").as_bytes()),
        ("two.env", format!("A={a}\n").as_bytes()),
        ("three.json", format!("{{\"a\": \"{a}\"}}").as_bytes()),
    ]);
    let provider = StandIn::start(Some(OK));
    let json: Vec<Value> =
        serde_json::from_str(&scan_verify(dir.path(), &provider.base, "json", &[])).unwrap();
    assert_eq!(json.len(), 4);
    assert!(json.iter().all(|f| f["verification"] == "live"));
    let requests = provider.requests();
    assert_eq!(
        requests.len(),
        2,
        "one request per distinct secret: {requests:?}"
    );
    for key in [&a, &b] {
        let carrying: Vec<_> = requests.iter().filter(|r| r.contains(&key[9..])).collect();
        assert_eq!(carrying.len(), 1, "{key} is checked once");
        let req = carrying[0];
        assert!(req.starts_with("GET /api/v1/key HTTP/1.1\r\n"), "{req}");
        assert!(
            req.contains(&format!("\r\nauthorization: Bearer {key}\r\n")),
            "{req}"
        );
        assert_eq!(
            req.matches(&key[9..]).count(),
            1,
            "only in that header: {req}"
        );
    }
}

#[test]
fn redirects_are_not_followed_and_other_answers_are_unknown() {
    let elsewhere = StandIn::start(Some(OK));
    let redirect: &'static str = Box::leak(
        format!(
            "HTTP/1.1 302 Found\r\nlocation: {}/api/v1/key\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            elsewhere.base
        )
        .into_boxed_str(),
    );
    let provider = StandIn::start(Some(redirect));
    let dir = temp_tree(&[("a.env", format!("K={}\n", common::gen_key()).as_bytes())]);
    let json: Vec<Value> =
        serde_json::from_str(&scan_verify(dir.path(), &provider.base, "json", &[])).unwrap();
    assert_eq!(json[0]["verification"], "unknown");
    assert_eq!(provider.requests().len(), 1);
    assert!(
        elsewhere.requests().is_empty(),
        "the key went to another host"
    );
}

#[test]
fn a_provider_that_never_answers_gives_unknown_after_the_timeout() {
    let silent = StandIn::start(None);
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let dir = temp_tree(&[("a.env", format!("K={}\n", common::gen_key()).as_bytes())]);
    for base in [&silent.base, &closed] {
        let json: Vec<Value> = serde_json::from_str(&scan_verify(
            dir.path(),
            base,
            "json",
            &["--verify-timeout", "1"],
        ))
        .unwrap();
        assert_eq!(json[0]["verification"], "unknown", "{base}");
    }
}

#[test]
fn verify_flags_are_checked() {
    let dir = temp_tree(&[("a.txt", b"nothing")]);
    keywarden()
        .current_dir(dir.path())
        .args(["scan", ".", "--verify-url", "http://127.0.0.1:1"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("--verify"));
    keywarden()
        .current_dir(dir.path())
        .args(["scan", ".", "--verify", "--verify-url", "ftp://example.com"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("https://"));
}

#[test]
fn a_rule_that_would_put_the_secret_in_the_url_is_refused() {
    let dir = temp_tree(&[(
        "rules.toml",
        br#"[[rules]]
id = "demo"
description = "Demo token"
regex = 'demo_[a-z]{8}'

[rules.verify]
url = "{base}/check?token={secret}"
base = "https://example.com"
headers = ["X-Token: {secret}"]
live = [200]
invalid = [401]
"#,
    )]);
    keywarden()
        .current_dir(dir.path())
        .args(["rules", "check", "rules.toml"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("rules.toml:7:"))
        .stderr(predicates::str::contains("may not hold {secret}"));
}

#[test]
fn a_configuration_in_the_scanned_tree_cannot_redirect_verification() {
    let thief = StandIn::start(Some(OK));
    let key = common::gen_key();
    let config = format!(
        r#"[[rules]]
id = "openrouter-api-key"
description = "OpenRouter API key"
regex = '(sk-or-v1-[0-9a-f]{{64}})'
keywords = ["sk-or-v1-"]

[rules.verify]
url = "{{base}}/api/v1/key"
base = "{}"
headers = ["Authorization: Bearer {{secret}}"]
live = [200]
invalid = [401]
"#,
        thief.base
    );
    let dir = temp_tree(&[
        (".keywarden.toml", config.as_bytes()),
        ("app.env", format!("KEY={key}\n").as_bytes()),
    ]);
    let out = keywarden()
        .current_dir(dir.path())
        .args(["scan", ".", "-q", "--verify", "-f", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not verifying rule 'openrouter-api-key'")
    );
    let json: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json.len(), 1);
    assert!(json[0].get("verification").is_none(), "{:?}", json[0]);
    assert!(
        thief.requests().is_empty(),
        "the key went to the tree's host"
    );
    // Named by the user, the same file is trusted.
    let out = keywarden()
        .current_dir(dir.path())
        .args([
            "scan",
            "app.env",
            "-q",
            "--verify",
            "-f",
            "json",
            "--config",
            ".keywarden.toml",
        ])
        .output()
        .unwrap();
    let json: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json[0]["verification"], "live");
    assert_eq!(thief.requests().len(), 1);
}

#[test]
fn only_verified_reports_and_fails_on_live_secrets_only() {
    let db = TestDb::sqlite();
    let owner = ["--owner", "a@example.com", "--name", "n"];
    let (live, _) = create_key(db.url(), &owner);
    let (revoked, rec) = create_key(db.url(), &owner);
    keywarden()
        .args([
            "keys",
            "revoke",
            rec["id"].as_str().unwrap(),
            "--database-url",
            db.url(),
        ])
        .assert()
        .success();
    let server = Server::start(db.url(), &[]);
    let scan = |dir: &std::path::Path, flags: &[&str]| {
        keywarden()
            .current_dir(dir)
            .args(["scan", ".", "-f", "json", "--verify-url", &server.base])
            .args(flags)
            .output()
            .unwrap()
    };
    let both = temp_tree(&[
        ("live.env", format!("KEY={live}\n").as_bytes()),
        ("revoked.env", format!("KEY={revoked}\n").as_bytes()),
    ]);
    for flags in [&["--only-verified"][..], &["--verify", "--only-verified"]] {
        let out = scan(both.path(), flags);
        assert_eq!(out.status.code(), Some(1), "{flags:?}");
        let json: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json.len(), 1);
        assert_eq!(json[0]["path"], "live.env");
        assert_eq!(json[0]["verification"], "live");
    }
    // Only revoked keys: nothing to fail on, and it says what it dropped.
    let revoked_only = temp_tree(&[("revoked.env", format!("KEY={revoked}\n").as_bytes())]);
    let out = scan(revoked_only.path(), &["--only-verified"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
    assert!(
        stderr.contains("not reporting 1 finding not verified live (1 invalid, 0 unknown, 0 without a verification)"),
        "{stderr}"
    );
    // Without it, the revoked key still fails the scan.
    assert_eq!(
        scan(revoked_only.path(), &["--verify"]).status.code(),
        Some(1)
    );
}
