//! Baselines and `.keywardenignore` that travel: one fingerprint for a
//! finding however its path is typed — from the repository root, as an
//! absolute path, from the parent directory, from a subdirectory — and in
//! `scan`, `history` and `staged` alike.

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;

/// `keywarden ARGS` in `dir`: (exit code, JSON findings).
fn run_json(dir: &Path, args: &[&str]) -> (i32, Vec<Value>) {
    let out = keywarden()
        .current_dir(dir)
        .args(args)
        .args(["--format", "json", "-q"])
        .output()
        .unwrap();
    let findings = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: not JSON ({e}): {} / {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), findings)
}

fn paths(findings: &[Value]) -> Vec<&str> {
    findings
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect()
}

/// A repository in `parent/repo` with a key committed in `src/app.py`.
fn repo_with_a_key() -> (tempfile::TempDir, std::path::PathBuf, String) {
    let parent = tempfile::tempdir().unwrap();
    let repo = parent.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    let git = |args: &[&str]| {
        let ok = std::process::Command::new("git")
            .current_dir(&repo)
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .status()
            .unwrap()
            .success();
        assert!(ok, "git {args:?}");
    };
    git(&["init", "-q", "-b", "main"]);
    let key = gen_key();
    std::fs::create_dir(repo.join("src")).unwrap();
    std::fs::write(repo.join("src/app.py"), format!("KEY = \"{key}\"\n")).unwrap();
    git(&["add", "-A"]);
    git(&[
        "-c",
        "user.name=A",
        "-c",
        "user.email=a@example.invalid",
        "commit",
        "-qm",
        "add app",
    ]);
    (parent, repo, key)
}

#[test]
fn one_baseline_serves_every_way_of_naming_the_repository_and_history() {
    let (parent, repo, _) = repo_with_a_key();
    let (code, findings) = run_json(&repo, &["scan", ".", "--write-baseline", "../b.json"]);
    assert_eq!(code, 1);
    assert_eq!(paths(&findings), ["src/app.py"]);
    let baseline = parent.path().join("b.json");
    let baseline = baseline.to_str().unwrap();
    let abs = repo.to_str().unwrap();
    // The path is the repository's, however the scan root is typed.
    for (dir, root) in [
        (repo.as_path(), abs),
        (parent.path(), "repo"),
        (repo.as_path(), "src"),
        (repo.join("src").as_path(), "."),
        (repo.as_path(), "src/app.py"),
    ] {
        let (code, findings) = run_json(dir, &["scan", root]);
        assert_eq!(
            (code, paths(&findings)),
            (1, vec!["src/app.py"]),
            "scan {root} in {dir:?}"
        );
        let (code, findings) = run_json(dir, &["scan", root, "--baseline", baseline]);
        assert_eq!(
            (code, findings.len()),
            (0, 0),
            "scan {root} in {dir:?} with the baseline"
        );
    }
    let (code, findings) = run_json(parent.path(), &["history", "repo", "--baseline", baseline]);
    assert_eq!(
        (code, findings.len()),
        (0, 0),
        "history with the scan's baseline"
    );
    // staged: a new key staged in a new file, baselined by a scan from afar.
    let key = gen_key();
    std::fs::write(repo.join("src/new.env"), format!("K={key}\n")).unwrap();
    let ok = std::process::Command::new("git")
        .current_dir(&repo)
        .args(["add", "src/new.env"])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let (code, findings) = run_json(&repo, &["staged"]);
    assert_eq!((code, paths(&findings)), (1, vec!["src/new.env"]));
    run_json(parent.path(), &["scan", abs, "--write-baseline", baseline]);
    let (code, findings) = run_json(&repo, &["staged", "--baseline", baseline]);
    assert_eq!(
        (code, findings.len()),
        (0, 0),
        "staged with a baseline from an absolute scan"
    );
}

#[test]
fn baselines_written_with_the_path_as_typed_still_match() {
    let (parent, repo, key) = repo_with_a_key();
    let hash = keywarden::secret::sha256_hex(key.as_bytes());
    // What `scan /abs/repo` and `scan repo` wrote before paths were relative.
    for old in [
        format!("{}/src/app.py", repo.display()),
        "repo/src/app.py".to_string(),
    ] {
        let baseline = parent.path().join("old.json");
        let entry =
            serde_json::json!([{ "fingerprint": format!("openrouter-api-key:{old}:{hash}") }]);
        std::fs::write(&baseline, entry.to_string()).unwrap();
        let (code, findings) = run_json(&repo, &["scan", "--baseline", baseline.to_str().unwrap()]);
        assert_eq!((code, findings.len()), (0, 0), "an entry for {old}");
    }
}

#[test]
fn keywardenignore_at_the_repository_root_suppresses_by_fingerprint() {
    let (parent, repo, key) = repo_with_a_key();
    let hash = keywarden::secret::sha256_hex(key.as_bytes());
    std::fs::write(
        repo.join(".keywardenignore"),
        format!("# the test fixture's key\n\nopenrouter-api-key:src/app.py:{hash}\n"),
    )
    .unwrap();
    for (dir, args) in [
        (repo.as_path(), vec!["scan"]),
        (repo.join("src").as_path(), vec!["scan", "."]),
        (parent.path(), vec!["scan", "repo"]),
        (parent.path(), vec!["history", "repo"]),
    ] {
        let (code, findings) = run_json(dir, &args);
        assert_eq!((code, findings.len()), (0, 0), "{args:?} in {dir:?}");
    }
    // A line that is not a fingerprint is an error naming the file and line.
    std::fs::write(repo.join(".keywardenignore"), "# ok\nsrc/app.py\n").unwrap();
    keywarden()
        .current_dir(&repo)
        .args(["scan", "-q"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            ".keywardenignore: line 2 is not a fingerprint",
        ));
}
