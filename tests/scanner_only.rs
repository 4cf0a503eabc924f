//! The scanner-only build (the default features): what the pre-commit hook
//! and the Action compile from source. It must leave the responder's stack
//! out, scan as the full build does, and say how to get the responder.

use std::path::Path;
use std::process::Command;

const RESPONDER_STACK: [&str; 8] = [
    "tokio", "axum", "hyper", "sqlx", "octocrab", "lettre", "tower", "governor",
];

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    cmd
}

#[test]
fn the_scanner_only_build_scans_and_names_the_full_build_for_the_responder() {
    // What the default build depends on: none of the responder's crates.
    let tree = cargo()
        .args(["tree", "--locked", "-e", "normal", "--prefix", "none"])
        .output()
        .unwrap();
    assert!(tree.status.success(), "{}", String::from_utf8_lossy(&tree.stderr));
    let crates: Vec<String> = String::from_utf8_lossy(&tree.stdout)
        .lines()
        .filter_map(|l| l.split(' ').next().map(str::to_string))
        .collect();
    for name in RESPONDER_STACK {
        assert!(!crates.iter().any(|c| c == name), "{name} is in the scanner-only build");
    }
    assert!(crates.iter().any(|c| c == "git2"), "the tree was read: {crates:?}");

    // Built apart from the test build (which has the responder), so the
    // binary the other tests run is not replaced under them.
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/scanner-only");
    let build = cargo()
        .args(["build", "--locked", "--quiet", "--bin", "keywarden", "--target-dir"])
        .arg(&target)
        .output()
        .unwrap();
    assert!(build.status.success(), "{}", String::from_utf8_lossy(&build.stderr));
    let deps: Vec<String> = std::fs::read_dir(target.join("debug/deps"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for name in RESPONDER_STACK {
        let lib = format!("lib{name}-");
        assert!(!deps.iter().any(|d| d.starts_with(&lib)), "{name} was compiled");
    }
    let bin = target.join("debug/keywarden");

    let version = Command::new(&bin).arg("--version").output().unwrap();
    assert!(
        String::from_utf8_lossy(&version.stdout).contains("(scanner-only build)"),
        "{version:?}"
    );

    // It scans as the full build does.
    let dir = tempfile::tempdir().unwrap();
    let key = format!("sk-or-v1-{}", "0123456789abcdef".repeat(4));
    std::fs::write(dir.path().join(".env"), format!("OPENROUTER_API_KEY={key}\n")).unwrap();
    let scan = Command::new(&bin)
        .args(["scan", "-q", "-f", "json"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(scan.status.code(), Some(1), "{scan:?}");
    let findings: serde_json::Value = serde_json::from_slice(&scan.stdout).unwrap();
    assert_eq!(findings.as_array().unwrap().len(), 1, "{findings}");

    // The responder's commands say plainly what to build instead.
    for args in [
        &["serve"][..],
        &["serve", "--listen", "127.0.0.1:0"],
        &["keys", "list"],
        &["outbox", "run", "--once"],
        &["partner", "keygen"],
    ] {
        let out = Command::new(&bin)
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("scanner-only build"), "{args:?}: {err}");
        assert!(err.contains("--features responder"), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
    // ... and leave nothing behind (no key store was made).
    assert!(!dir.path().join("keywarden.db").exists());
}
