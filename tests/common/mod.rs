//! Shared builders for the integration tests: the real binary, the fixture
//! tree and its ground truth, temp trees and generated keys.
#![allow(dead_code)]

/// Runs each `async fn NAME(db: TestDb)` of the test file as two tests,
/// `sqlite::NAME` and `postgres::NAME` (`#[macro_use] mod common;`).
#[allow(unused_macros)]
macro_rules! on_both_backends {
    ($($name:ident),*) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::TestDb::sqlite()).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::TestDb::postgres().await).await })*
        }
    };
}

pub mod db;
pub mod github;
pub mod private_pg;
pub mod release;
pub mod server;
pub mod smtp;

use assert_cmd::Command;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The `keywarden` binary built by cargo, with colour and progress off.
pub fn keywarden() -> Command {
    let mut cmd = Command::cargo_bin("keywarden").expect("binary is built");
    cmd.env("NO_COLOR", "1");
    cmd
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// One planted key of the fixture tree's ground truth.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Planted {
    pub path: String,
    pub line: u64,
    pub column: u64,
    pub key: String,
    pub binary: bool,
    pub ignored: bool,
    pub allowed: bool,
}

pub fn truth() -> Vec<Planted> {
    let text = std::fs::read_to_string(fixtures().join("tree.truth.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| Planted {
            // As reported: the fixture tree lives in this repository, and
            // paths are relative to the repository's root.
            path: format!("fixtures/tree/{}", k["path"].as_str().unwrap()),
            line: k["line"].as_u64().unwrap(),
            column: k["column"].as_u64().unwrap(),
            key: k["key"].as_str().unwrap().to_string(),
            binary: k["binary"].as_bool().unwrap(),
            ignored: k["ignored"].as_bool().unwrap(),
            allowed: k["allowed"].as_bool().unwrap(),
        })
        .collect()
}

/// A fresh OpenRouter-shaped key: `sk-or-v1-` + 64 hex from a counter and
/// the process id, distinct in every call. Not a real credential.
pub fn gen_key() -> String {
    static N: AtomicU64 = AtomicU64::new(1);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let seed = format!("{}-{n}", std::process::id());
    format!(
        "sk-or-v1-{}",
        keywarden::secret::sha256_hex(seed.as_bytes())
    )
}

/// A temp directory holding `files` (path, contents).
pub fn temp_tree(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, data) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
    dir
}

/// `keywarden scan` with `args` in `dir`, reporting JSON.
fn scan_command(dir: &Path, args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("keywarden"));
    cmd.current_dir(dir)
        .env("NO_COLOR", "1")
        .args(["scan", "--format", "json", "-q"])
        .args(args);
    cmd
}

/// The findings of a JSON report.
fn report_of(out: &std::process::Output) -> Vec<Value> {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Runs `keywarden` with `args` in `dir` and parses its JSON report.
pub fn scan_json(dir: &Path, args: &[&str]) -> (Vec<Value>, i32, String) {
    let out = scan_command(dir, args).output().unwrap();
    (
        report_of(&out),
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `(path, line, column)` of each finding.
pub fn places(findings: &[Value]) -> Vec<(String, u64, u64)> {
    let mut v: Vec<_> = findings
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["line"].as_u64().unwrap(),
                f["column"].as_u64().unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

/// A git repository in a temp dir, driven with the git CLI under a fixed
/// identity.
pub struct GitRepo {
    pub dir: tempfile::TempDir,
}

impl GitRepo {
    pub fn new() -> Self {
        let repo = GitRepo {
            dir: tempfile::tempdir().unwrap(),
        };
        repo.git(&["init", "-q", "-b", "main"]);
        repo
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs git in the repository and returns its trimmed stdout.
    pub fn git(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("git")
            .current_dir(self.dir.path())
            .args(args)
            .env("GIT_AUTHOR_NAME", "Ada Author")
            .env("GIT_AUTHOR_EMAIL", "ada@example.invalid")
            .env("GIT_AUTHOR_DATE", "2024-03-01T12:00:00+01:00")
            .env("GIT_COMMITTER_NAME", "Ada Author")
            .env("GIT_COMMITTER_EMAIL", "ada@example.invalid")
            .env("GIT_COMMITTER_DATE", "2024-03-01T12:00:00+01:00")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", self.dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Clones this repository into `dest` (a path that does not exist yet)
    /// with extra `git clone` flags such as `--depth 1` or `--bare`.
    pub fn clone_to(&self, dest: &Path, flags: &[&str]) {
        let url = format!("file://{}", self.dir.path().display());
        let mut args = vec!["clone", "-q"];
        args.extend_from_slice(flags);
        args.push(&url);
        args.push(dest.to_str().unwrap());
        self.git(&args);
    }

    /// Writes (Some) or deletes (None) files, stages everything and commits.
    /// Returns the new commit id.
    pub fn commit(&self, files: &[(&str, Option<&str>)], message: &str) -> String {
        for (path, content) in files {
            let p = self.dir.path().join(path);
            match content {
                Some(c) => {
                    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                    std::fs::write(&p, c).unwrap();
                }
                None => std::fs::remove_file(&p).unwrap(),
            }
        }
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }
}

/// Runs `keywarden history` with `args` on `repo` and parses the JSON.
pub fn history_json(repo: &Path, args: &[&str]) -> (Vec<Value>, i32, String) {
    let out = keywarden()
        .args(["history", "--format", "json", "-q", "--show-secrets"])
        .args(args)
        .arg(repo)
        .output()
        .unwrap();
    let findings: Vec<Value> = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    (
        findings,
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `(secret, path, commit id)` of each finding, sorted.
pub fn attributions(findings: &[Value]) -> Vec<(String, String, String)> {
    let mut v: Vec<_> = findings
        .iter()
        .map(|f| {
            (
                f["secret"].as_str().unwrap().to_string(),
                f["path"].as_str().unwrap().to_string(),
                f["commit"]["id"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

/// Waits until `check` holds, looking every 100 ms; fails the test naming
/// `what` when it does not hold within `limit`.
pub fn eventually(what: &str, limit: std::time::Duration, mut check: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// `keywarden keys create --json ARGS` on `database_url`: (key, record).
pub fn create_key(database_url: &str, args: &[&str]) -> (String, Value) {
    let out = keywarden()
        .args(["keys", "create", "--json", "--database-url", database_url])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "keys create failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    (v["key"].as_str().unwrap().to_string(), v["record"].clone())
}

/// [`scan_json`]'s findings, and the peak RSS of that scan alone.
pub fn scan_json_and_peak_rss(dir: &Path, args: &[&str]) -> (Vec<Value>, u64) {
    let (out, peak) = output_and_peak_rss(&mut scan_command(dir, args));
    (report_of(&out), peak)
}

/// Runs `cmd` to its end: its output, and the peak RSS of that one
/// process. `getrusage(RUSAGE_CHILDREN)` would give the largest child the
/// test binary ever waited for, and tests run in parallel: another test's
/// fixture generator could be measured instead.
// Reaped by wait4 below, which std cannot give the rusage of.
#[allow(clippy::zombie_processes)]
pub fn output_and_peak_rss(cmd: &mut std::process::Command) -> (std::process::Output, u64) {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            pipe.read_to_end(&mut bytes).unwrap();
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 writes into the two values we own; the child is ours
    // and not waited for by anyone else.
    assert_eq!(unsafe { libc::wait4(pid, &mut status, 0, &mut usage) }, pid);
    let output = std::process::Output {
        status: std::process::ExitStatus::from_raw(status),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    };
    (output, usage.ru_maxrss as u64 * 1024)
}
