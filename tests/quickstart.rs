//! The README's quickstart, run as written: pasted whole into a shell, it
//! must show what its comments say.

use std::path::Path;
use std::process::Command;

/// The shell block under the README's quickstart heading.
fn quickstart_block() -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme
        .find("## The whole loop on one machine (quickstart)")
        .expect("the README has its quickstart");
    let after = &readme[start..];
    let body = after.split("```sh\n").nth(1).expect("a sh block");
    body.split("\n```").next().unwrap().to_string()
}

#[test]
fn the_readme_quickstart_runs_as_written() {
    let block = quickstart_block();
    // The one line a test cannot run as it stands: the binary is already
    // built, and put on PATH instead.
    let script: Vec<&str> = block
        .lines()
        .filter(|l| !l.starts_with("cargo install"))
        .collect();
    assert!(script.len() + 1 == block.lines().count(), "{block}");
    let dir = tempfile::tempdir().unwrap();
    let bin = assert_cmd::cargo::cargo_bin("keywarden");
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // A safety net only: should the block fail before its `kill %1`, serve
    // must not outlive the test.
    let script = format!(
        "trap 'kill $(jobs -p) 2>/dev/null' EXIT\n{}",
        script.join("\n")
    );
    let out = Command::new("timeout")
        .args(["120", "bash", "-c", &script])
        .current_dir(dir.path())
        .env("PATH", path)
        .env("HOME", dir.path())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "You")
        .env("GIT_AUTHOR_EMAIL", "you@example.com")
        .env("GIT_COMMITTER_NAME", "You")
        .env("GIT_COMMITTER_EMAIL", "you@example.com")
        .env_remove("KEYWARDEN_DATABASE_URL")
        .env_remove("KEYWARDEN_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let all = format!("stdout:\n{stdout}\nstderr:\n{stderr}");
    let codes: Vec<&str> = stdout
        .lines()
        .filter(|l| l.len() == 3 && l.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    assert_eq!(codes, ["200", "401"], "{all}");
    assert!(stdout.contains(".env"), "history names the file: {all}");
    assert!(stdout.contains("true_positive"), "{all}");
    assert!(stdout.lines().any(|l| l.ends_with(".eml")), "{all}");
    // `outbox list`: a row of the owner's email (ID first), in state sent.
    let row = stdout
        .lines()
        .find(|l| l.contains("you@example.com") && l.starts_with(|c: char| c.is_ascii_digit()))
        .unwrap_or_else(|| panic!("an outbox row: {all}"));
    let state = row.split_whitespace().nth(1);
    assert_eq!(state, Some("sent"), "the email is sent, not pending: {all}");
    assert!(out.status.success(), "the block ends cleanly: {all}");
    // `kill %1` stopped serve: the port is free again.
    let started = std::time::Instant::now();
    while std::net::TcpListener::bind("127.0.0.1:8080").is_err() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(15),
            "serve still listens: {all}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
