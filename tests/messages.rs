//! Messages a user can act on: each cause said once and in words, the
//! flags gitleaks users type, tables that line up, and progress a person
//! can read while a long history scan runs.

mod common;
use common::*;
use std::time::{Duration, Instant};

fn stderr_of(args: &[&str]) -> (i32, String) {
    let out = keywarden().args(args).output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_missing_configuration_file_is_called_one_and_its_cause_is_said_once() {
    let dir = temp_tree(&[("a.txt", b"nothing")]);
    let (code, err) = stderr_of(&[
        "scan",
        "--config",
        "nope.toml",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("nope.toml: cannot read configuration file"),
        "{err}"
    );
    assert_eq!(err.matches("os error 2").count(), 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn a_store_that_cannot_be_opened_says_why_once() {
    // A directory where the database file should be.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().display());
    let (code, err) = stderr_of(&[
        "keys",
        "create",
        "--owner",
        "a@example.com",
        "--name",
        "x",
        "--database-url",
        &url,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unable to open database file"), "{err}");
    assert_eq!(
        err.matches("unable to open database file").count(),
        1,
        "{err}"
    );
    assert!(!err.contains("(code: 14)"), "SQLite's code in words: {err}");
    assert!(
        err.contains(&dir.path().display().to_string()),
        "names the file: {err}"
    );
}

#[test]
fn a_refused_postgresql_connection_says_so_within_a_second() {
    // Port 1 on loopback: nothing listens, the kernel refuses at once.
    let started = Instant::now();
    let (code, err) = stderr_of(&[
        "keys",
        "list",
        "--database-url",
        "postgres://keywarden@127.0.0.1:1/test",
    ]);
    let took = started.elapsed();
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("connection refused"), "{err}");
    assert!(err.contains("127.0.0.1:1"), "names what was tried: {err}");
    assert!(!err.contains("pool timed out"), "{err}");
    assert!(took < Duration::from_secs(1), "took {took:?}: {err}");
}

#[test]
fn gitleaks_spellings_do_what_gitleaks_users_expect() {
    let key = gen_key();
    let dir = temp_tree(&[("app.env", format!("OPENROUTER_API_KEY={key}\n").as_bytes())]);
    let out_dir = tempfile::tempdir().unwrap();
    let report = out_dir.path().join("report.json");
    let out = keywarden()
        .args([
            "scan",
            "--no-git",
            "--redact",
            "-v",
            "--report-format",
            "json",
        ])
        .arg("--report-path")
        .arg(&report)
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let findings: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(findings.as_array().unwrap().len(), 1, "{findings}");
    assert!(!findings.to_string().contains(&key), "redacted: {findings}");
    // --redact with gitleaks' percentage form is accepted too, and cannot
    // be combined with --show-secrets.
    keywarden()
        .args(["scan", "-q", "--redact=100"])
        .arg(dir.path())
        .assert()
        .code(1);
    let (code, err) = stderr_of(&[
        "scan",
        "--redact",
        "--show-secrets",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
}

#[tokio::test]
async fn outbox_list_rows_line_up_with_their_header() {
    use keywarden::keystore::{KeyHash, KeySpec, LeakReport, create_key, open_store};
    let db = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", db.path().join("k.db").display());
    let store = open_store(&url).await.unwrap();
    let now = time::OffsetDateTime::now_utc();
    for (name, owner) in [
        ("a", "o@example.com"),
        ("b", "a-much-longer-owner@example.com"),
    ] {
        let (key, _) = create_key(&*store, KeySpec::new(name, owner), now)
            .await
            .unwrap();
        store
            .record_leaks(
                &[LeakReport {
                    hash: KeyHash::of(key.expose()),
                    reporter: "github-secret-scanning".into(),
                    token_type: "openrouter_api_key".into(),
                    url: Some("https://github.com/acme/app/blob/main/.env".into()),
                    source: "commit".into(),
                    request_id: None,
                }],
                now,
            )
            .await
            .unwrap();
    }
    let out = keywarden()
        .args(["outbox", "list", "--database-url", &url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "a header and two rows: {text}");
    // Each column's title (after two spaces) starts where the values of
    // that column start.
    let header = lines[0];
    let h = header.as_bytes();
    let titles: Vec<usize> = (0..h.len())
        .filter(|&i| h[i] != b' ' && (i == 0 || (i >= 2 && h[i - 1] == b' ' && h[i - 2] == b' ')))
        .collect();
    assert!(titles.len() >= 6, "{header}");
    for row in &lines[1..] {
        for &t in &titles {
            let b = row.as_bytes();
            assert!(
                t < b.len() && b[t] != b' ' && (t == 0 || b[t - 1] == b' '),
                "column at {t} of {header:?} not aligned in {row:?}\n{text}"
            );
        }
    }
}

/// A repository of `commits` commits, each writing a file of about 1 MiB
/// (50 paths in turn), made with `git fast-import`.
fn big_history(commits: usize) -> tempfile::TempDir {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .current_dir(dir.path())
            .args(args)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    assert!(git(&["init", "-q"]).wait().unwrap().success());
    let mut import = git(&["fast-import", "--quiet"]);
    let mut stdin = import.stdin.take().unwrap();
    let body: String = (0..20_000)
        .map(|i| {
            format!(
                "let x{i} = \"{:032x}\";\n",
                (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            )
        })
        .collect();
    for n in 0..commits {
        let data = format!("// file {n}\n{body}");
        write!(
            stdin,
            "commit refs/heads/main\ncommitter A <a@example.invalid> {} +0000\ndata 4\nedit\n\
             M 100644 inline f{}.rs\ndata {}\n{data}\n",
            1_700_000_000 + n,
            n % 50,
            data.len()
        )
        .unwrap();
    }
    drop(stdin);
    assert!(import.wait().unwrap().success());
    dir
}

#[test]
fn history_on_a_terminal_shows_blobs_read_of_the_total_with_a_percentage() {
    let repo = big_history(200);
    let bin = assert_cmd::cargo::cargo_bin("keywarden");
    // `script` gives the command a terminal and copies what it drew. One
    // thread and --strict (every object re-hashed) keep the blob phase
    // long enough for the line to be drawn a few times (it is refreshed
    // every 100 ms): without them the debug build reads these blobs in
    // under 0.1 s.
    let out = std::process::Command::new("script")
        .args(["-qec"])
        .arg(format!(
            "{} history --strict -j 1 {}",
            bin.display(),
            repo.path().display()
        ))
        .arg("/dev/null")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let drawn = String::from_utf8_lossy(&out.stdout);
    assert!(drawn.contains("200 commits; blobs "), "{drawn}");
    assert!(drawn.contains("/200 ("), "{drawn}");
    assert!(drawn.contains("%), "), "{drawn}");
    assert!(drawn.contains("ETA"), "{drawn}");
    assert!(
        drawn.contains("scanned 200 blobs of 200 commits"),
        "the summary counts blobs and commits: {drawn}"
    );
    // Without a terminal: the summary only.
    let out = keywarden()
        .arg("history")
        .arg(repo.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("ETA"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}
