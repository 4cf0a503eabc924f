//! The responder's memory at rest does not depend on whether GitHub's key
//! endpoint answers (issue 19). A failed fetch of GitHub's public keys is
//! logged in words; it never symbolizes a backtrace, which read the
//! binary's debug information and kept it: 13 MB with `--github-keys-file`,
//! 142 MB once a fetch had failed.

mod common;

use common::db::TestDb;
use common::eventually;
use common::github::{Signer, key_list};
use common::server::{Server, get, post};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

const MIB: u64 = 1 << 20;
/// How far above the keys-file server a server whose fetches fail may sit.
/// The debug build sits 5–7 MiB above it (the HTTP client's code, paged in
/// by the fetch; 2.2 MiB in the release build); a symbolized backtrace put
/// it 245 MiB above.
const SLACK: u64 = 16 * MIB;
/// Failed fetches each test waits for.
const FAILURES: f64 = 3.0;

/// `http://ADDR` where nothing listens: connections are refused.
fn refusing_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

/// A GitHub key endpoint that answers `keys` once and is then gone: every
/// later fetch is refused.
fn answers_once_then_refuses(keys: &serde_json::Value) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let body = keys.to_string();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
            head.push(byte[0]);
        }
        let reply = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(reply.as_bytes()).unwrap();
        // The listener is dropped here: nothing answers on `base` again.
    });
    base
}

/// The failed fetches of GitHub's keys the server has counted.
fn failed_fetches(server: &Server) -> f64 {
    get(&server.admin_url("/metrics"), &[])
        .body
        .lines()
        .filter(|l| l.starts_with("keywarden_github_key_refreshes_total{") && l.contains("error"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Compares, at rest, the RSS of `failing` with that of `baseline` (a
/// keys-file server started at the same time), and checks the failure was
/// logged in words.
fn assert_rss_as_with_keys_file(failing: &Server, baseline: &Server) {
    // Let the last failure's log line be written.
    std::thread::sleep(Duration::from_millis(500));
    let (with_file, with_failures) = (baseline.rss(), failing.rss());
    eprintln!(
        "RSS at rest: {} KiB with a keys file, {} KiB after {} failed fetches",
        with_file / 1024,
        with_failures / 1024,
        failed_fetches(failing)
    );
    assert!(
        with_failures < with_file + SLACK,
        "{} MiB after failed fetches, {} MiB with a keys file",
        with_failures / MIB,
        with_file / MIB
    );
    let log = failing.log_text();
    assert!(
        log.to_lowercase().contains("connection refused"),
        "the failure is said in words: {log}"
    );
    assert!(!log.contains("Found at"), "no backtrace is logged: {log}");
}

#[test]
fn failed_key_fetches_at_start_leave_rss_as_with_a_keys_file() {
    let (db, baseline_db) = (TestDb::sqlite(), TestDb::sqlite());
    let signer = Signer::new();
    let (baseline, _dir) =
        common::github::serve_trusting(baseline_db.url(), &signer, &["--no-mail-worker"]);
    let failing = Server::start(
        db.url(),
        &["--no-mail-worker", "--github-api-url", &refusing_address()],
    );
    // Retries back off from 1 s: failures at about 0, 1 and 3 s.
    eventually("three failed fetches", Duration::from_secs(20), || {
        failed_fetches(&failing) >= FAILURES
    });
    assert_rss_as_with_keys_file(&failing, &baseline);
}

#[test]
fn refetches_for_unknown_key_identifiers_that_fail_leave_rss_as_with_a_keys_file() {
    let (db, baseline_db) = (TestDb::sqlite(), TestDb::sqlite());
    let signer = Signer::new();
    let (baseline, _dir) =
        common::github::serve_trusting(baseline_db.url(), &signer, &["--no-mail-worker"]);
    let github = answers_once_then_refuses(&key_list(&[signer.listed(true)]));
    let failing = Server::start(
        db.url(),
        &[
            "--no-mail-worker",
            "--github-api-url",
            &github,
            "--github-keys-refresh-interval",
            "100ms",
        ],
    );
    eventually("GitHub's keys are loaded", Duration::from_secs(20), || {
        get(&failing.admin_url("/readyz"), &[]).status == 200
    });
    // Unauthenticated reports naming identifiers GitHub never listed, each
    // past the refresh interval: each one refetches, and each refetch fails.
    let body = br#"[{"token":"t","type":"openrouter_api_key","url":"u","source":"commit"}]"#;
    for _ in 0..FAILURES as usize {
        std::thread::sleep(Duration::from_millis(150));
        let stranger = Signer::new();
        let reply = post(
            &failing.url("/github/secret-scanning"),
            &[
                ("Content-Type", "application/json"),
                ("Github-Public-Key-Identifier", &stranger.id),
                ("Github-Public-Key-Signature", &stranger.sign(body)),
            ],
            body,
        );
        assert_eq!(reply.status, 401, "{}", reply.body);
    }
    eventually("three failed refetches", Duration::from_secs(10), || {
        failed_fetches(&failing) >= FAILURES
    });
    assert_rss_as_with_keys_file(&failing, &baseline);
}
