//! The GitHub Action (`action.yml`): its `run:` steps executed as the runner
//! would — inputs substituted, GITHUB_* set, a real-shaped event payload —
//! against temp repositories. `uses:` steps are checked, not run.

mod common;
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
        match expr {
            "github.action_path" => env!("CARGO_MANIFEST_DIR").to_string(),
            "runner.os" => "Linux".to_string(),
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

/// Runs the composite action in `workspace` for `event` with `payload`.
fn run_action(
    workspace: &Path,
    event: &str,
    payload: serde_json::Value,
    inputs: &[(&str, &str)],
) -> ActionRun {
    let action = action();
    let tmp = tempfile::tempdir().unwrap();
    let event_path = tmp.path().join("event.json");
    std::fs::write(&event_path, payload.to_string()).unwrap();
    let summary = tmp.path().join("summary.md");
    std::fs::write(&summary, "").unwrap();
    let bin_dir = PathBuf::from(env!("CARGO_BIN_EXE_keywarden"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path_var = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap());

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
                .env("NO_COLOR", "1");
            if let Some(env) = step["env"].as_mapping() {
                for (k, v) in env {
                    cmd.env(k.as_str().unwrap(), ctx.substitute(v.as_str().unwrap()));
                }
            }
            let out = cmd.output().unwrap();
            run.code = out.status.code();
            run.log = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            all_ok &= out.status.success();
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
fn action_yml_installs_from_its_own_checkout_with_a_cached_build() {
    let action = action();
    let steps = action["runs"]["steps"].as_sequence().unwrap();
    assert_eq!(action["runs"]["using"], "composite");
    let install = steps
        .iter()
        .find(|s| s["name"].as_str().unwrap().starts_with("Install"))
        .unwrap();
    assert!(
        install["run"]
            .as_str()
            .unwrap()
            .contains("cargo install --locked --path \"$GITHUB_ACTION_PATH\"")
    );
    let cache = steps
        .iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/cache@"))
        })
        .unwrap();
    let paths = cache["with"]["path"].as_str().unwrap();
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
        "args",
    ] {
        assert!(action["inputs"][input].is_mapping(), "input {input}");
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
