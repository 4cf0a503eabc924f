//! The GitHub Action (`action.yml`): its `run:` steps executed as the runner
//! would — inputs substituted, GITHUB_* set, a real-shaped event payload —
//! against temp repositories. `uses:` steps are checked, not run.

mod common;
use common::release::{release_dir, serve_dir};
use common::*;
use serde_json::json;
use serde_yaml::Value as Yaml;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn action() -> Yaml {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("action.yml")).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

#[derive(Debug)]
struct StepRun {
    name: String,
    ran: bool,
    code: Option<i32>,
    log: String,
    with: HashMap<String, String>,
}

struct ActionRun {
    steps: Vec<StepRun>,
    outputs: HashMap<String, String>,
    summary: String,
    /// $RUNNER_TEMP, kept until the run is dropped.
    temp: tempfile::TempDir,
}

impl ActionRun {
    fn step(&self, prefix: &str) -> &StepRun {
        self.steps
            .iter()
            .find(|s| s.name.starts_with(prefix))
            .unwrap()
    }
    /// Every byte the action printed.
    fn all_logs(&self) -> String {
        self.steps
            .iter()
            .map(|s| s.log.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

struct Context<'a> {
    inputs: HashMap<String, String>,
    outputs: &'a HashMap<String, HashMap<String, String>>,
    /// `github.*` and `runner.*` values the test sets.
    context: &'a HashMap<String, String>,
}

impl Context<'_> {
    fn lookup(&self, expr: &str) -> String {
        let expr = expr.trim();
        if let Some(name) = expr.strip_prefix("inputs.") {
            return self.inputs.get(name).cloned().unwrap_or_default();
        }
        if let Some(rest) = expr.strip_prefix("steps.") {
            let (id, name) = rest.split_once(".outputs.").unwrap();
            return self
                .outputs
                .get(id)
                .and_then(|o| o.get(name))
                .cloned()
                .unwrap_or_default();
        }
        if let Some(value) = self.context.get(expr) {
            return value.clone();
        }
        match expr {
            "github.action_path" => env!("CARGO_MANIFEST_DIR").to_string(),
            "runner.os" => "Linux".to_string(),
            "runner.arch" => "X64".to_string(),
            _ => String::new(),
        }
    }

    fn substitute(&self, text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(i) = rest.find("${{") {
            out.push_str(&rest[..i]);
            let end = rest[i..].find("}}").unwrap() + i;
            out.push_str(&self.lookup(&rest[i + 3..end]));
            rest = &rest[end + 2..];
        }
        out.push_str(rest);
        out
    }

    /// The `if:` expressions this action uses: `always()`, `success()` and
    /// `A == 'b'` / `A != 'b'` joined by `&&`.
    fn condition(&self, expr: Option<&str>, all_ok: bool) -> bool {
        let Some(expr) = expr else { return all_ok };
        let mut status_ok = all_ok;
        let mut result = true;
        for term in expr.split("&&").map(str::trim) {
            match term {
                "always()" => status_ok = true,
                "success()" => {}
                _ => {
                    let (lhs, rhs, eq) = match term.split_once("==") {
                        Some((l, r)) => (l, r, true),
                        None => {
                            let (l, r) = term.split_once("!=").expect("== or !=");
                            (l, r, false)
                        }
                    };
                    let rhs = rhs.trim().trim_matches('\'');
                    result &= (self.lookup(lhs) == rhs) == eq;
                }
            }
        }
        status_ok && result
    }
}

/// Runs the composite action in `workspace` for `event` with `payload`,
/// with this test build's keywarden on PATH.
fn run_action(
    workspace: &Path,
    event: &str,
    payload: serde_json::Value,
    inputs: &[(&str, &str)],
) -> ActionRun {
    run_action_with(workspace, event, payload, inputs, &Runner::default())
}

/// How the runner around the action is set up.
#[derive(Default)]
struct Runner<'a> {
    /// `github.*` / `runner.*` context values, e.g. `github.action_ref`.
    context: &'a [(&'a str, &'a str)],
    /// PATH for the steps (default: this build's keywarden, then the test's
    /// PATH); entries steps add to $GITHUB_PATH go in front.
    path: Option<String>,
    /// Extra environment for every step (over the step's own).
    env: &'a [(&'a str, &'a str)],
}

fn run_action_with(
    workspace: &Path,
    event: &str,
    payload: serde_json::Value,
    inputs: &[(&str, &str)],
    runner: &Runner,
) -> ActionRun {
    let action = action();
    let context: HashMap<String, String> = runner
        .context
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let event_path = tmp.path().join("event.json");
    std::fs::write(&event_path, payload.to_string()).unwrap();
    let summary = tmp.path().join("summary.md");
    std::fs::write(&summary, "").unwrap();
    let bin_dir = PathBuf::from(env!("CARGO_BIN_EXE_keywarden"))
        .parent()
        .unwrap()
        .to_path_buf();
    let mut path_var = runner
        .path
        .clone()
        .unwrap_or_else(|| format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap()));
    let github_path = tmp.path().join("github_path");
    std::fs::write(&github_path, "").unwrap();
    // Each test has its own home (caches under ~); cargo and rustup keep
    // theirs.
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let real_home = std::env::var("HOME").unwrap_or_default();
    let cargo_home = std::env::var("CARGO_HOME").unwrap_or_else(|_| format!("{real_home}/.cargo"));
    let rustup_home =
        std::env::var("RUSTUP_HOME").unwrap_or_else(|_| format!("{real_home}/.rustup"));

    let mut defaults: HashMap<String, String> = HashMap::new();
    for (name, spec) in action["inputs"].as_mapping().unwrap() {
        let default = spec["default"].as_str().unwrap_or("").to_string();
        defaults.insert(name.as_str().unwrap().to_string(), default);
    }
    for (k, v) in inputs {
        assert!(defaults.contains_key(*k), "action.yml has no input {k}");
        defaults.insert(k.to_string(), v.to_string());
    }
    let mut outputs: HashMap<String, HashMap<String, String>> = HashMap::new();
    let mut steps = Vec::new();
    let mut all_ok = true;
    for step in action["runs"]["steps"].as_sequence().unwrap() {
        let ctx = Context {
            inputs: defaults.clone(),
            outputs: &outputs,
            context: &context,
        };
        let name = step["name"].as_str().unwrap().to_string();
        let ran = ctx.condition(step["if"].as_str(), all_ok);
        let mut with = HashMap::new();
        if let Some(w) = step["with"].as_mapping() {
            for (k, v) in w {
                with.insert(
                    k.as_str().unwrap().to_string(),
                    ctx.substitute(v.as_str().unwrap()),
                );
            }
        }
        let mut run = StepRun {
            name,
            ran,
            code: None,
            log: String::new(),
            with,
        };
        if ran && let Some(script) = step["run"].as_str() {
            assert_eq!(step["shell"].as_str(), Some("bash"));
            let script_path = tmp.path().join("step.sh");
            std::fs::write(&script_path, ctx.substitute(script)).unwrap();
            let output_file = tmp.path().join("output");
            std::fs::write(&output_file, "").unwrap();
            let mut cmd = std::process::Command::new("bash");
            cmd.args(["--noprofile", "--norc", "-eo", "pipefail"])
                .arg(&script_path)
                .current_dir(workspace)
                .env("PATH", &path_var)
                .env("GITHUB_ACTION_PATH", env!("CARGO_MANIFEST_DIR"))
                .env("GITHUB_WORKSPACE", workspace)
                .env("GITHUB_EVENT_NAME", event)
                .env("GITHUB_EVENT_PATH", &event_path)
                .env("GITHUB_OUTPUT", &output_file)
                .env("GITHUB_STEP_SUMMARY", &summary)
                .env("RUNNER_TEMP", tmp.path())
                .env("RUNNER_OS", ctx.lookup("runner.os"))
                .env("RUNNER_ARCH", ctx.lookup("runner.arch"))
                .env("GITHUB_PATH", &github_path)
                .env("HOME", &home)
                .env("CARGO_HOME", &cargo_home)
                .env("RUSTUP_HOME", &rustup_home)
                .env("NO_COLOR", "1");
            if let Some(env) = step["env"].as_mapping() {
                for (k, v) in env {
                    cmd.env(k.as_str().unwrap(), ctx.substitute(v.as_str().unwrap()));
                }
            }
            for (k, v) in runner.env {
                cmd.env(k, v);
            }
            let out = cmd.output().unwrap();
            run.code = out.status.code();
            run.log = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            all_ok &= out.status.success();
            // What the step added to $GITHUB_PATH is on PATH from the next
            // step on, last added first.
            let added = std::fs::read_to_string(&github_path).unwrap();
            for dir in added.lines().filter(|l| !l.is_empty()) {
                path_var = format!("{dir}:{path_var}");
            }
            std::fs::write(&github_path, "").unwrap();
            if let Some(id) = step["id"].as_str() {
                let text = std::fs::read_to_string(&output_file).unwrap();
                let map = text
                    .lines()
                    .filter_map(|l| l.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                outputs.insert(id.to_string(), map);
            }
        }
        steps.push(run);
    }
    let ctx = Context {
        inputs: defaults,
        outputs: &outputs,
        context: &context,
    };
    let mut action_outputs = HashMap::new();
    for (name, spec) in action["outputs"].as_mapping().unwrap() {
        action_outputs.insert(
            name.as_str().unwrap().to_string(),
            ctx.substitute(spec["value"].as_str().unwrap()),
        );
    }
    ActionRun {
        steps,
        outputs: action_outputs,
        summary: std::fs::read_to_string(&summary).unwrap(),
        temp: tmp,
    }
}

fn pr_payload(base: &str, head: &str) -> serde_json::Value {
    json!({
        "action": "synchronize",
        "number": 7,
        "pull_request": {
            "number": 7,
            "base": {"ref": "main", "sha": base, "repo": {"full_name": "octo/app"}},
            "head": {"ref": "feature", "sha": head, "repo": {"full_name": "octo/app"}},
        },
        "repository": {"full_name": "octo/app", "default_branch": "main"},
    })
}

fn push_payload(before: &str, after: &str) -> serde_json::Value {
    json!({
        "ref": "refs/heads/main",
        "before": before,
        "after": after,
        "created": before.chars().all(|c| c == '0'),
        "repository": {"full_name": "octo/app"},
        "commits": [],
    })
}

/// A repository whose base commit is clean and whose feature commit adds a key.
fn repo_with_leak_in_pr() -> (GitRepo, String, String, String) {
    let repo = GitRepo::new();
    let k = gen_key();
    let base = repo.commit(&[("README.md", Some("app\n"))], "init");
    let head = repo.commit(
        &[("leak.env", Some(&format!("OPENROUTER_API_KEY={k}\n")))],
        "add config",
    );
    (repo, base, head, k)
}

const NO_INSTALL: [(&str, &str); 1] = [("install", "false")];

#[test]
fn pull_request_with_a_leaked_key_annotates_summarises_uploads_and_fails() {
    let (repo, base, head, k) = repo_with_leak_in_pr();
    let run = run_action(
        repo.path(),
        "pull_request",
        pr_payload(&base, &head),
        &NO_INSTALL,
    );
    assert!(
        !run.step("Install").ran && !run.step("Cache").ran,
        "install: false skips building"
    );
    let scan = run.step("Scan");
    assert_eq!(scan.code, Some(0), "{}", scan.log);
    assert!(scan.log.contains(&format!(
        "scanning the pull request's commits, {base}..{head}"
    )));
    assert!(
        scan.log
            .contains("::error file=leak.env,line=1,endLine=1,col=20,"),
        "{}",
        scan.log
    );
    assert_eq!(run.outputs["findings"], "1");
    assert_eq!(run.outputs["exit-code"], "1");
    assert_eq!(run.outputs["sarif"], "keywarden.sarif");
    let sarif: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo.path().join("keywarden.sarif")).unwrap())
            .unwrap();
    assert_eq!(sarif["runs"][0]["results"].as_array().unwrap().len(), 1);
    assert!(
        run.summary.contains(&format!(
            "| openrouter-api-key | `leak.env` | 1 | `{}` | `sk-or-v1-",
            &head[..12]
        )),
        "{}",
        run.summary
    );
    let upload = run.step("Upload SARIF");
    assert!(upload.ran);
    assert_eq!(upload.with["sarif_file"], "keywarden.sarif");
    assert_eq!(upload.with["category"], "keywarden");
    let verdict = run.step("Fail on findings");
    assert_eq!(verdict.code, Some(1));
    assert!(verdict.log.contains("1 secret(s) found"));
    assert!(
        !run.all_logs().contains(&k[9..]) && !run.summary.contains(&k[9..]),
        "no whole key in logs"
    );
}

#[test]
fn pull_request_whose_range_adds_no_key_passes_even_if_history_has_one() {
    let repo = GitRepo::new();
    let k = gen_key();
    let base = repo.commit(&[("old.env", Some(&format!("K={k}\n")))], "old leak");
    let head = repo.commit(&[("README.md", Some("docs\n"))], "docs");
    let run = run_action(
        repo.path(),
        "pull_request",
        pr_payload(&base, &head),
        &NO_INSTALL,
    );
    assert_eq!(run.outputs["findings"], "0");
    assert_eq!(run.outputs["exit-code"], "0");
    assert!(run.summary.contains("no secrets found"));
    assert_eq!(run.step("Fail on findings").code, Some(0));
}

#[test]
fn fail_on_findings_false_reports_without_failing() {
    let (repo, base, head, _) = repo_with_leak_in_pr();
    let run = run_action(
        repo.path(),
        "pull_request",
        pr_payload(&base, &head),
        &[
            ("install", "false"),
            ("fail-on-findings", "false"),
            ("upload-sarif", "false"),
        ],
    );
    assert_eq!(run.outputs["findings"], "1");
    assert!(!run.step("Upload SARIF").ran);
    assert_eq!(run.step("Fail on findings").code, Some(0));
}

#[test]
fn push_scans_before_to_after_and_a_new_branch_scans_all_history() {
    let repo = GitRepo::new();
    let (old, new) = (gen_key(), gen_key());
    let first = repo.commit(&[("a.env", Some(&format!("K={old}\n")))], "first");
    let second = repo.commit(&[("b.env", Some(&format!("K={new}\n")))], "second");
    let run = run_action(
        repo.path(),
        "push",
        push_payload(&first, &second),
        &NO_INSTALL,
    );
    assert_eq!(run.outputs["findings"], "1", "{}", run.all_logs());
    let zeros = "0".repeat(40);
    let run = run_action(
        repo.path(),
        "push",
        push_payload(&zeros, &second),
        &NO_INSTALL,
    );
    assert!(
        run.step("Scan")
            .log
            .contains("new branch: scanning its full history")
    );
    assert_eq!(run.outputs["findings"], "2");
    let missing = "1234567890123456789012345678901234567890";
    let run = run_action(
        repo.path(),
        "push",
        push_payload(missing, &second),
        &NO_INSTALL,
    );
    assert!(
        run.step("Scan")
            .log
            .contains("is not in the clone: scanning the full history")
    );
    assert_eq!(run.outputs["findings"], "2");
}

#[test]
fn schedule_scans_full_history_and_mode_dir_scans_the_working_tree() {
    let repo = GitRepo::new();
    let (old, wip) = (gen_key(), gen_key());
    repo.commit(&[("a.env", Some(&format!("K={old}\n")))], "first");
    repo.commit(&[("a.env", Some("K=\n"))], "remove");
    std::fs::write(repo.path().join("wip.env"), format!("K={wip}\n")).unwrap();
    let run = run_action(
        repo.path(),
        "schedule",
        json!({"schedule": "0 3 * * *"}),
        &NO_INSTALL,
    );
    assert_eq!(run.outputs["findings"], "1");
    let run = run_action(
        repo.path(),
        "schedule",
        json!({}),
        &[("install", "false"), ("mode", "dir")],
    );
    assert_eq!(run.outputs["findings"], "1");
    assert!(run.step("Scan").log.contains("file=wip.env"));
}

#[test]
fn a_clone_too_shallow_for_the_pull_request_says_to_set_fetch_depth_0() {
    let (repo, base, head, _) = repo_with_leak_in_pr();
    let shallow = tempfile::tempdir().unwrap();
    repo.clone_to(&shallow.path().join("c"), &["--depth", "1"]);
    let run = run_action(
        &shallow.path().join("c"),
        "pull_request",
        pr_payload(&base, &head),
        &NO_INSTALL,
    );
    let scan = run.step("Scan");
    assert_eq!(scan.code, Some(1));
    assert!(
        scan.log.contains("too shallow") && scan.log.contains("fetch-depth: 0"),
        "{}",
        scan.log
    );
    assert_eq!(run.step("Fail on findings").code, Some(1));
}

#[test]
fn action_yml_caches_the_release_binary_or_else_the_build() {
    let action = action();
    let steps = action["runs"]["steps"].as_sequence().unwrap();
    assert_eq!(action["runs"]["using"], "composite");
    let caches: Vec<&Yaml> = steps
        .iter()
        .filter(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/cache@"))
        })
        .collect();
    assert_eq!(caches.len(), 2);
    // The downloaded release, keyed by version and target, when there is a
    // version; the cargo build otherwise.
    assert!(caches[0]["if"].as_str().unwrap().contains("version != ''"));
    assert!(
        caches[0]["with"]["key"]
            .as_str()
            .unwrap()
            .contains("steps.resolve.outputs.version")
    );
    assert!(caches[1]["if"].as_str().unwrap().contains("version == ''"));
    let paths = caches[1]["with"]["path"].as_str().unwrap();
    assert!(paths.contains("~/.cargo/registry") && paths.contains("target"));
    let upload = steps
        .iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("github/codeql-action/upload-sarif@"))
        })
        .unwrap();
    assert_eq!(upload["with"]["category"], "keywarden");
    for input in [
        "path",
        "mode",
        "config",
        "baseline",
        "fail-on-findings",
        "sarif",
        "upload-sarif",
        "install",
        "version",
        "release-url",
        "args",
    ] {
        assert!(action["inputs"][input].is_mapping(), "input {input}");
    }
}

const ASSET: &str = "keywarden-9.9.9-x86_64-unknown-linux-musl.tar.gz";

/// PATH for a runner without cargo: the system's directories only.
fn path_without_cargo() -> String {
    let path = "/usr/local/bin:/usr/bin:/bin".to_string();
    for dir in path.split(':') {
        assert!(!Path::new(dir).join("cargo").exists(), "cargo in {dir}");
        assert!(
            !Path::new(dir).join("keywarden").exists(),
            "keywarden in {dir}"
        );
    }
    path
}

#[test]
fn install_fetches_the_release_binary_checks_its_sha256_and_needs_no_cargo() {
    let release = release_dir("9.9.9", "x86_64-unknown-linux-musl");
    let url = serve_dir(release.path());
    let (repo, base, head, _) = repo_with_leak_in_pr();
    let path = path_without_cargo();
    // Pinned by the `version` input, and by the action's own tag.
    for (inputs, context) in [
        (
            vec![
                ("install", "true"),
                ("version", "9.9.9"),
                ("release-url", &url),
            ],
            vec![],
        ),
        (
            vec![("install", "true"), ("release-url", &url)],
            vec![("github.action_ref", "v9.9.9")],
        ),
    ] {
        let run = run_action_with(
            repo.path(),
            "pull_request",
            pr_payload(&base, &head),
            &inputs,
            &Runner {
                context: &context,
                path: Some(path.clone()),
                ..Runner::default()
            },
        );
        let install = run.step("Install");
        assert_eq!(install.code, Some(0), "{}", install.log);
        assert!(
            install
                .log
                .contains("keywarden 9.9.9 (x86_64-unknown-linux-musl)"),
            "{}",
            install.log
        );
        assert!(install.log.contains("verified"), "{}", install.log);
        let installed = run.temp.path().join("keywarden/bin/keywarden");
        assert!(installed.is_file(), "{}", install.log);
        // The scan ran the installed binary (nothing else is on PATH).
        let scan = run.step("Scan");
        assert_eq!(scan.code, Some(0), "{}", scan.log);
        assert_eq!(run.outputs["findings"], "1");
    }
}

#[test]
fn a_tampered_archive_or_checksum_fails_the_install_and_is_never_run() {
    let (repo, base, head, _) = repo_with_leak_in_pr();
    let path = path_without_cargo();
    let tamper_archive = |dir: &Path| {
        let file = dir.join("v9.9.9").join(ASSET);
        let mut bytes = std::fs::read(&file).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        std::fs::write(&file, bytes).unwrap();
    };
    let tamper_checksum = |dir: &Path| {
        let file = dir.join("v9.9.9").join(format!("{ASSET}.sha256"));
        std::fs::write(&file, format!("{}  {ASSET}\n", "ab".repeat(32))).unwrap();
    };
    for tamper in [&tamper_archive as &dyn Fn(&Path), &tamper_checksum] {
        let release = release_dir("9.9.9", "x86_64-unknown-linux-musl");
        tamper(release.path());
        let url = serve_dir(release.path());
        let run = run_action_with(
            repo.path(),
            "pull_request",
            pr_payload(&base, &head),
            &[
                ("install", "true"),
                ("version", "9.9.9"),
                ("release-url", &url),
            ],
            &Runner {
                path: Some(path.clone()),
                ..Runner::default()
            },
        );
        let install = run.step("Install");
        assert_eq!(install.code, Some(1), "{}", install.log);
        assert!(
            install.log.contains("::error::keywarden install: ")
                && install.log.contains("does not match its published SHA-256"),
            "{}",
            install.log
        );
        assert!(!run.temp.path().join("keywarden/bin/keywarden").exists());
        assert!(
            !run.step("Scan").ran,
            "the scan never runs an unverified binary"
        );
    }
    // A pinned version with no release is an error, not a build.
    let release = release_dir("9.9.9", "x86_64-unknown-linux-musl");
    let url = serve_dir(release.path());
    let run = run_action_with(
        repo.path(),
        "pull_request",
        pr_payload(&base, &head),
        &[
            ("install", "true"),
            ("version", "9.9.8"),
            ("release-url", &url),
        ],
        &Runner {
            path: Some(path),
            ..Runner::default()
        },
    );
    let install = run.step("Install");
    assert_eq!(install.code, Some(1), "{}", install.log);
    assert!(
        install.log.contains("keywarden 9.9.8 has no"),
        "{}",
        install.log
    );
}

/// No release for the action's ref (a branch): the scanner is built from
/// the action's checkout with the real cargo. This is the scanner-only build
/// the hook and the Action make; it is checked here as a user meets it.
/// (Built unoptimised, into its own target directory, through cargo's own
/// profile settings, so the test costs a debug build and not a release one:
/// what is tested is that the fallback happens and what it builds.)
#[test]
fn no_release_for_the_ref_falls_back_to_the_scanner_only_build() {
    let release = release_dir("9.9.9", "x86_64-unknown-linux-musl");
    let url = serve_dir(release.path());
    let (repo, base, head, _) = repo_with_leak_in_pr();
    let cargo_bin = Path::new(&std::env::var("CARGO").unwrap())
        .parent()
        .unwrap()
        .to_path_buf();
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/action-fallback");
    let target = target.to_str().unwrap();
    for (ref_name, why) in [
        ("main", "the action's ref main is not a version tag"),
        ("v9.9.7", "the tag v9.9.7 has no release asset"),
    ] {
        let run = run_action_with(
            repo.path(),
            "pull_request",
            pr_payload(&base, &head),
            &[("install", "true"), ("release-url", &url)],
            &Runner {
                context: &[("github.action_ref", ref_name)],
                path: Some(format!("{}:{}", cargo_bin.display(), path_without_cargo())),
                env: &[
                    ("CARGO_TARGET_DIR", target),
                    ("CARGO_PROFILE_RELEASE_OPT_LEVEL", "0"),
                    ("CARGO_PROFILE_RELEASE_LTO", "off"),
                    ("CARGO_PROFILE_RELEASE_DEBUG", "false"),
                    ("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "256"),
                    ("CARGO_PROFILE_RELEASE_INCREMENTAL", "true"),
                ],
            },
        );
        let install = run.step("Install");
        assert_eq!(install.code, Some(0), "{}", install.log);
        assert!(install.log.contains(why), "{}", install.log);
        assert!(
            install.log.contains("building the scanner"),
            "{}",
            install.log
        );
        let bin = run.temp.path().join("keywarden/bin/keywarden");
        assert!(bin.is_file(), "{}", install.log);
        let scan = run.step("Scan");
        assert_eq!(scan.code, Some(0), "{}", scan.log);
        assert_eq!(run.outputs["findings"], "1");
        // The build is the scanner-only one, and says how to get the rest.
        let version = std::process::Command::new(&bin)
            .arg("--version")
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&version.stdout).contains("(scanner-only build)"),
            "{version:?}"
        );
        for args in [
            &["serve"][..],
            &["keys", "list"],
            &["outbox", "run", "--once"],
            &["partner", "keygen"],
        ] {
            let out = std::process::Command::new(&bin)
                .args(args)
                .current_dir(run.temp.path())
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
            assert!(err.contains("--features responder"), "{args:?}: {err}");
            assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        }
        assert!(!run.temp.path().join("keywarden.db").exists());
    }
}

#[test]
fn a_pull_request_cannot_loosen_its_own_gate_with_keywarden_toml_or_keywardenignore() {
    let repo = GitRepo::new();
    let k = gen_key();
    let hash = keywarden::secret::sha256_hex(k.as_bytes());
    let base = repo.commit(&[("README.md", Some("app\n"))], "init");
    // The pull request adds a key, and with it settings that would hide it.
    let head = repo.commit(
        &[
            ("leak.env", Some(&format!("OPENROUTER_API_KEY={k}\n"))),
            (
                ".keywarden.toml",
                Some("disabled_rules = [\"openrouter-api-key\"]\n"),
            ),
            (
                ".keywardenignore",
                Some(&format!("openrouter-api-key:leak.env:{hash}\n")),
            ),
        ],
        "add config, quietly",
    );
    let run = run_action(
        repo.path(),
        "pull_request",
        pr_payload(&base, &head),
        &NO_INSTALL,
    );
    let scan = run.step("Scan");
    assert_eq!(run.outputs["findings"], "1", "{}", scan.log);
    assert_eq!(run.step("Fail on findings").code, Some(1));
    assert!(
        scan.log.contains("::notice title=keywarden::This pull request changes .keywarden.toml or .keywardenignore"),
        "{}",
        scan.log
    );
    assert!(
        run.summary.contains("the changes apply after merge"),
        "{}",
        run.summary
    );
    // The CLI has the same power: the settings of a given commit.
    let out = keywarden()
        .current_dir(repo.path())
        .args(["scan", ".", "-q", "--config-from", &base])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let out = keywarden()
        .current_dir(repo.path())
        .args(["scan", ".", "-q"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "the head's own settings hide it"
    );
    let out = keywarden()
        .current_dir(repo.path())
        .args(["scan", ".", "-q", "--config-from", "no-such-rev"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--config-from no-such-rev"));
}
