//! `keywarden staged` and the pre-commit hook, on real repositories.

mod common;
use common::*;
use predicates::str::contains;

fn staged(repo: &GitRepo) -> (Vec<serde_json::Value>, i32, String) {
    let out = keywarden()
        .current_dir(repo.path())
        .args(["staged", "-f", "json", "--show-secrets"])
        .output()
        .unwrap();
    (
        serde_json::from_slice(&out.stdout).unwrap(),
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(repo: &GitRepo, path: &str, text: &str) {
    let p = repo.path().join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

#[test]
fn staged_reports_only_secrets_on_added_lines_with_staged_line_numbers() {
    let repo = GitRepo::new();
    let (old, new) = (gen_key(), gen_key());
    repo.commit(&[("app.env", Some(&format!("A={old}\n")))], "base");
    write(&repo, "app.env", &format!("A={old}\n# note\nB={new}\n"));
    repo.git(&["add", "app.env"]);
    let (f, code, err) = staged(&repo);
    assert_eq!(code, 1);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0]["secret"], new.as_str());
    assert_eq!(f[0]["line"], 3);
    assert_eq!(f[0]["column"], 3);
    assert!(err.contains("app.env:3"), "{err}");
    assert!(err.contains("git restore --staged"), "{err}");
    assert!(err.contains("keywarden:allow"), "{err}");
}

#[test]
fn staged_reads_the_index_not_the_working_tree() {
    let repo = GitRepo::new();
    let k = gen_key();
    repo.commit(&[("a.txt", Some("a\n"))], "init");
    // Staged: a key. Working tree: the key already removed again.
    write(&repo, "a.txt", &format!("a\n{k}\n"));
    repo.git(&["add", "a.txt"]);
    write(&repo, "a.txt", "a\n");
    let (f, code, _) = staged(&repo);
    assert_eq!((f.len(), code), (1, 1));
    // Staged: clean. Working tree: a key not yet added (as after `git add -p`).
    repo.git(&["add", "a.txt"]);
    write(&repo, "a.txt", &format!("a\n{k}\n"));
    let (f, code, _) = staged(&repo);
    assert_eq!((f.len(), code), (0, 0));
}

#[test]
fn staged_works_before_the_first_commit() {
    let repo = GitRepo::new();
    let k = gen_key();
    write(&repo, "first.env", &format!("KEY={k}\n"));
    repo.git(&["add", "first.env"]);
    let (f, code, _) = staged(&repo);
    assert_eq!(code, 1);
    assert_eq!(f[0]["path"], "first.env");
    assert_eq!(f[0]["line"], 1);
}

#[test]
fn staged_handles_deleted_renamed_and_binary_files() {
    let repo = GitRepo::new();
    let (old, bin) = (gen_key(), gen_key());
    repo.commit(
        &[
            ("keep.env", Some(&format!("K={old}\nmore\nlines\nhere\n"))),
            ("gone.txt", Some("x\n")),
        ],
        "base",
    );
    repo.git(&["mv", "keep.env", "moved.env"]);
    repo.git(&["rm", "-q", "gone.txt"]);
    let mut data = vec![0u8, 1, 2, b'\n'];
    data.extend_from_slice(bin.as_bytes());
    std::fs::write(repo.path().join("blob.bin"), &data).unwrap();
    repo.git(&["add", "blob.bin"]);
    let (f, code, _) = staged(&repo);
    assert_eq!(code, 1);
    let got: Vec<_> = f
        .iter()
        .map(|x| (x["path"].as_str().unwrap(), x["binary"].as_bool().unwrap()))
        .collect();
    assert_eq!(got, [("blob.bin", true)], "the renamed file adds no secret");
}

#[test]
fn staged_respects_inline_allow_and_the_config_file() {
    let repo = GitRepo::new();
    let (a, b) = (gen_key(), gen_key());
    repo.commit(&[("x.txt", Some("x\n"))], "init");
    write(
        &repo,
        "allowed.py",
        &format!("K = '{a}'  # keywarden:allow\n"),
    );
    write(&repo, "vendor/lib.txt", &b);
    write(
        &repo,
        ".keywarden.toml",
        "[allowlist]\npaths = [\"vendor/**\"]\n",
    );
    repo.git(&["add", "-A"]);
    let (f, code, _) = staged(&repo);
    assert!(f.is_empty(), "{f:?}");
    assert_eq!(code, 0);
}

fn hook_path(repo: &GitRepo) -> std::path::PathBuf {
    repo.path().join(".git/hooks/pre-commit")
}

#[test]
fn hook_install_refuses_a_foreign_hook_unless_forced_and_uninstall_removes_only_its_own() {
    let repo = GitRepo::new();
    std::fs::create_dir_all(repo.path().join(".git/hooks")).unwrap();
    std::fs::write(hook_path(&repo), "#!/bin/sh\necho mine\n").unwrap();
    keywarden()
        .args(["hook", "install"])
        .arg(repo.path())
        .assert()
        .code(2)
        .stderr(contains("a different pre-commit hook exists; use --force"));
    keywarden()
        .args(["hook", "uninstall"])
        .arg(repo.path())
        .assert()
        .code(2)
        .stderr(contains("not keywarden's hook"));
    assert!(
        std::fs::read_to_string(hook_path(&repo))
            .unwrap()
            .contains("echo mine")
    );
    keywarden()
        .args(["hook", "install", "--force"])
        .arg(repo.path())
        .assert()
        .code(0);
    let text = std::fs::read_to_string(hook_path(&repo)).unwrap();
    assert!(text.contains("staged"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(hook_path(&repo))
            .unwrap()
            .permissions()
            .mode()
            & 0o111,
        0o111
    );
    keywarden()
        .args(["hook", "install"])
        .arg(repo.path())
        .assert()
        .code(0);
    keywarden()
        .args(["hook", "uninstall"])
        .arg(repo.path())
        .assert()
        .code(0)
        .stdout(contains("removed"));
    assert!(!hook_path(&repo).exists());
}

#[test]
fn hook_install_honours_core_hooks_path() {
    let repo = GitRepo::new();
    repo.git(&["config", "core.hooksPath", "githooks"]);
    keywarden()
        .args(["hook", "install"])
        .arg(repo.path())
        .assert()
        .code(0);
    assert!(repo.path().join("githooks/pre-commit").exists());
    assert!(!hook_path(&repo).exists());
}

#[test]
fn installed_hook_refuses_a_commit_with_a_key_and_allows_it_once_removed() {
    let repo = GitRepo::new();
    let k = gen_key();
    repo.commit(&[("README.md", Some("hi\n"))], "init");
    keywarden()
        .args(["hook", "install"])
        .arg(repo.path())
        .assert()
        .code(0);
    write(&repo, "config.env", &format!("OPENROUTER_API_KEY={k}\n"));
    repo.git(&["add", "config.env"]);
    let out = std::process::Command::new("git")
        .current_dir(repo.path())
        .args(["commit", "-q", "-m", "add config"])
        .env("GIT_AUTHOR_NAME", "A")
        .env("GIT_AUTHOR_EMAIL", "a@example.invalid")
        .env("GIT_COMMITTER_NAME", "A")
        .env("GIT_COMMITTER_EMAIL", "a@example.invalid")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the hook must refuse the commit");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("config.env:1"), "{err}");
    assert!(!err.contains(&k[9..]) && !String::from_utf8_lossy(&out.stdout).contains(&k[9..]));
    assert_eq!(repo.git(&["rev-list", "--count", "HEAD"]), "1");
    write(&repo, "config.env", "OPENROUTER_API_KEY=${FROM_VAULT}\n");
    repo.git(&["add", "config.env"]);
    repo.git(&["commit", "-q", "-m", "add config"]);
    assert_eq!(repo.git(&["rev-list", "--count", "HEAD"]), "2");
}

#[test]
fn pre_commit_hooks_yaml_offers_both_hook_ids() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".pre-commit-hooks.yaml"),
    )
    .unwrap();
    for needle in [
        "- id: keywarden\n",
        "- id: keywarden-system\n",
        "entry: keywarden staged",
        "language: rust",
        "language: system",
        "pass_filenames: false",
    ] {
        assert!(text.contains(needle), "missing {needle:?}");
    }
}
