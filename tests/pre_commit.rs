//! The pre-commit hooks as pre-commit runs them (`pre-commit try-repo`, the
//! real tool from PyPI): `keywarden-prebuilt` fetches the release binary of
//! the hook's version once, checks its SHA-256 and compiles nothing.

mod common;
use common::release::{release_dir, serve_dir};
use common::*;
use std::path::Path;
use std::process::{Command, Output};

/// The release target install.sh picks for this machine.
fn host_target() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "aarch64-unknown-linux-musl",
        _ => "x86_64-unknown-linux-musl",
    }
}

fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// A project with `files` staged.
fn project(files: &[(&str, &str)]) -> GitRepo {
    let repo = GitRepo::new();
    for (path, text) in files {
        std::fs::write(repo.path().join(path), text).unwrap();
        repo.git(&["add", path]);
    }
    repo
}

fn try_repo(project: &Path, pre_commit_home: &Path, release_url: &str) -> Output {
    Command::new("python3")
        .args([
            "-m",
            "pre_commit",
            "try-repo",
            env!("CARGO_MANIFEST_DIR"),
            "keywarden-prebuilt",
        ])
        .current_dir(project)
        .env("PRE_COMMIT_HOME", pre_commit_home)
        .env("KEYWARDEN_RELEASE_URL", release_url)
        .env("NO_COLOR", "1")
        .env_remove("RUNNER_OS")
        .env_remove("RUNNER_ARCH")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn the_prebuilt_hook_fetches_a_verified_binary_once_and_refuses_a_leak() {
    let release = release_dir(&version(), host_target());
    let url = serve_dir(release.path());
    let home = tempfile::tempdir().unwrap();
    let key = gen_key();
    let leaky = project(&[(".env", &format!("OPENROUTER_API_KEY={key}\n"))]);
    let out = try_repo(leaky.path(), home.path(), &url);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains(&format!("fetching keywarden {}", version())),
        "{log}"
    );
    assert!(log.contains("verified"), "{log}");
    assert!(log.contains(".env"), "names the file: {log}");
    assert!(!log.contains(&key[12..]), "redacted: {log}");
    let cached = home
        .path()
        .join(format!("keywarden-prebuilt/{}/bin/keywarden", version()));
    assert!(cached.is_file(), "{log}");

    // Once fetched, the hook needs no network: a release URL where nothing
    // listens changes nothing, and a clean commit passes.
    let clean = project(&[("README.md", "hello\n")]);
    let out = try_repo(clean.path(), home.path(), "http://127.0.0.1:1");
    let log = text(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(!log.contains("fetching"), "{log}");
}

#[test]
fn the_prebuilt_hook_refuses_a_binary_that_does_not_match_its_checksum() {
    let release = release_dir(&version(), host_target());
    let asset = release.path().join(format!(
        "v{}/keywarden-{}-{}.tar.gz",
        version(),
        version(),
        host_target()
    ));
    let mut bytes = std::fs::read(&asset).unwrap();
    let last = bytes.len() - 100;
    bytes[last] ^= 0x40;
    std::fs::write(&asset, bytes).unwrap();
    let url = serve_dir(release.path());
    let home = tempfile::tempdir().unwrap();
    let clean = project(&[("README.md", "hello\n")]);
    let out = try_repo(clean.path(), home.path(), &url);
    let log = text(&out);
    assert_ne!(out.status.code(), Some(0), "{log}");
    assert!(
        log.contains("does not match its published SHA-256"),
        "{log}"
    );
    assert!(
        log.contains("hook id keywarden builds from source"),
        "{log}"
    );
    assert!(
        !home
            .path()
            .join(format!("keywarden-prebuilt/{}/bin/keywarden", version()))
            .exists()
    );
}
