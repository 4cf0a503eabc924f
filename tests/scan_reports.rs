//! `keywarden scan` over the fixture tree, compared with its ground truth,
//! in every report format.

mod common;
use common::*;
use serde_json::Value;

fn expected(include_ignored: bool) -> Vec<(String, u64, u64)> {
    let mut v: Vec<_> = truth()
        .into_iter()
        .filter(|k| !k.allowed && (include_ignored || !k.ignored))
        .map(|k| (k.path, k.line, k.column))
        .collect();
    v.sort();
    v
}

fn scan_fixture_tree(args: &[&str]) -> (Vec<Value>, i32, String) {
    scan_json(&fixtures().join("tree"), args)
}

#[test]
fn scan_reports_every_planted_key_and_no_decoy() {
    let (findings, code, _) = scan_fixture_tree(&[]);
    assert_eq!(code, 1);
    assert_eq!(places(&findings), expected(false));
}

#[test]
fn no_ignore_also_scans_files_that_ignore_files_skip() {
    let (findings, _, _) = scan_fixture_tree(&["--no-ignore"]);
    assert_eq!(places(&findings), expected(true));
    assert!(expected(true).len() > expected(false).len());
}

#[test]
fn show_secrets_prints_exactly_the_planted_keys() {
    let (findings, _, _) = scan_fixture_tree(&["--show-secrets"]);
    let mut got: Vec<_> = findings
        .iter()
        .map(|f| f["secret"].as_str().unwrap().to_string())
        .collect();
    got.sort();
    let mut want: Vec<_> = truth()
        .into_iter()
        .filter(|k| !k.allowed && !k.ignored)
        .map(|k| k.key)
        .collect();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn findings_carry_rule_fingerprint_end_column_and_binary_flag() {
    let (findings, _, _) = scan_fixture_tree(&[]);
    for f in &findings {
        let path = f["path"].as_str().unwrap();
        assert_eq!(f["rule_id"], "openrouter-api-key");
        assert_eq!(f["severity"], "critical");
        assert_eq!(f["end_line"], f["line"]);
        assert_eq!(
            f["end_column"].as_u64().unwrap(),
            f["column"].as_u64().unwrap() + 72,
            "a 73-character key ends 72 columns after it starts"
        );
        let fp = f["fingerprint"].as_str().unwrap();
        assert!(
            fp.starts_with(&format!("openrouter-api-key:{path}:")),
            "{fp}"
        );
        assert_eq!(fp.rsplit(':').next().unwrap().len(), 64);
        let planted_binary = truth().iter().any(|k| k.path == path && k.binary);
        assert_eq!(f["binary"].as_bool().unwrap(), planted_binary, "{path}");
    }
    assert!(findings.iter().any(|f| f["binary"] == true));
}

/// Each format's whole output, without `--show-secrets`.
fn report(format: &str) -> String {
    let out = keywarden()
        .current_dir(fixtures().join("tree"))
        .args(["scan", "-q", "--format", format])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{format}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn every_format_redacts_secrets_by_default() {
    for format in ["text", "json", "jsonl", "sarif", "github"] {
        let text = report(format);
        for k in truth() {
            assert!(!text.contains(&k.key[9..]), "{format} leaks {}", k.path);
            assert!(
                !text.contains(&k.key[20..40]),
                "{format} leaks part of {}",
                k.path
            );
        }
        let label = format!("{}...{}", &truth()[0].key[..12], &truth()[0].key[70..]);
        assert!(text.contains(&label), "{format} shows the label {label}");
    }
}

#[test]
fn text_report_groups_by_file_and_has_no_colour_when_piped() {
    let text = report("text");
    assert!(!text.contains('\x1b'));
    let headers: Vec<_> = text
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.is_empty())
        .collect();
    let mut files: Vec<_> = expected(false).into_iter().map(|e| e.0).collect();
    files.dedup();
    assert_eq!(headers, files);
    assert!(text.contains("  2:20  critical  openrouter-api-key  sk-or-v1-"));
    assert!(text.contains("(binary file)"));
}

#[test]
fn jsonl_report_has_one_finding_per_line() {
    let text = report("jsonl");
    let rows: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(places(&rows), expected(false));
}

#[test]
fn sarif_report_is_what_github_code_scanning_accepts() {
    let sarif: Value = serde_json::from_str(&report("sarif")).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    assert!(sarif["$schema"].as_str().unwrap().contains("sarif-2.1.0"));
    let run = &sarif["runs"][0];
    let driver = &run["tool"]["driver"];
    assert_eq!(driver["name"], "keywarden");
    assert_eq!(driver["rules"][0]["id"], "openrouter-api-key");
    assert_eq!(driver["rules"][0]["properties"]["security-severity"], "9.5");
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), expected(false).len());
    let mut seen = Vec::new();
    for r in results {
        assert_eq!(r["ruleId"], "openrouter-api-key");
        assert_eq!(r["ruleIndex"], 0);
        assert_eq!(r["level"], "error");
        let loc = &r["locations"][0]["physicalLocation"];
        let uri = loc["artifactLocation"]["uri"].as_str().unwrap();
        assert!(
            !uri.starts_with('/') && !uri.contains("://"),
            "relative uri: {uri}"
        );
        let region = &loc["region"];
        assert_eq!(
            region["endColumn"].as_u64().unwrap(),
            region["startColumn"].as_u64().unwrap() + 73,
            "SARIF endColumn is exclusive"
        );
        assert!(
            r["partialFingerprints"]["keywarden/v1"]
                .as_str()
                .unwrap()
                .starts_with("openrouter-api-key:")
        );
        seen.push((uri.to_string(), region["startLine"].as_u64().unwrap()));
    }
    assert!(
        seen.contains(&("fixtures/tree/docs/%C3%BCn%C3%AFcode.md".to_string(), 3)),
        "{seen:?}"
    );
}

#[test]
fn github_format_emits_one_error_annotation_per_finding() {
    let text = report("github");
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines.len(), expected(false).len());
    assert!(lines.iter().all(|l| l.starts_with("::error file=")));
    assert!(text.contains("::error file=fixtures/tree/.env,line=2,endLine=2,col=20,endColumn=93,title=keywarden%3A openrouter-api-key::OpenRouter API key sk-or-v1-"));
}

/// `keywarden scan -q -f FORMAT -o PATH` over the fixture tree.
fn scan_fixture_tree_to(format: &str, path: &std::path::Path) -> std::process::Output {
    keywarden()
        .current_dir(fixtures().join("tree"))
        .args(["scan", "-q", "-f", format, "-o"])
        .arg(path)
        .output()
        .unwrap()
}

#[test]
fn output_flag_writes_the_report_to_a_file_and_nothing_to_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.sarif");
    let out = scan_fixture_tree_to("sarif", &file);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let sarif: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(
        sarif["runs"][0]["results"].as_array().unwrap().len(),
        expected(false).len()
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
}

#[test]
fn output_to_a_fifo_writes_through_it_and_leaves_it_a_fifo() {
    // `-o /dev/null`, `-o /dev/stdout` and `-o` a named pipe must write to
    // what is there. Renaming a finished temporary file over it, as for a
    // regular file, replaced /dev/null with a plain file when run as root.
    use std::os::unix::fs::FileTypeExt;
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("report.pipe");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    // The reader is a child process, so that it can be killed when nothing
    // ever writes to the pipe.
    let mut reader = std::process::Command::new("cat")
        .arg(&fifo)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read as it comes, so a report larger than the pipe cannot block cat.
    let mut stdout = reader.stdout.take().unwrap();
    let drain = std::thread::spawn(move || {
        let mut report = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut report).unwrap();
        report
    });
    let out = scan_fixture_tree_to("json", &fifo);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while reader.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            reader.kill().unwrap();
            panic!("nothing was written to the pipe");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let report = drain.join().unwrap();
    let findings: Vec<Value> = serde_json::from_slice(&report).unwrap();
    assert_eq!(places(&findings), expected(false));
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
    let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(entries.len(), 1, "no temporary file is left behind");
}

#[test]
fn output_to_dev_stdout_appends_to_a_redirected_stdout() {
    // `-o /dev/stdout >> log`: the report is added to the log, which stays
    // the same file; it is not replaced by a new one holding the report.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    std::fs::write(&log, "header\n").unwrap();
    let append = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    let status = std::process::Command::new(assert_cmd::cargo::cargo_bin!("keywarden"))
        .current_dir(fixtures().join("tree"))
        .args(["scan", "-q", "-f", "json", "-o", "/dev/stdout"])
        .stdout(append)
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(1));
    let text = std::fs::read_to_string(&log).unwrap();
    let report = text
        .strip_prefix("header\n")
        .expect("the log's start is kept");
    let findings: Vec<Value> = serde_json::from_str(report).unwrap();
    assert_eq!(places(&findings), expected(false));
}

#[test]
fn one_thread_and_many_threads_report_the_same() {
    let (a, _, _) = scan_fixture_tree(&["--threads", "1"]);
    let (b, _, _) = scan_fixture_tree(&["--threads", "8"]);
    assert_eq!(a, b);
}

#[test]
fn summary_on_stderr_counts_findings_and_inline_allowed() {
    let out = keywarden()
        .current_dir(fixtures().join("tree"))
        .args(["scan", "-f", "json"])
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    let n = expected(false).len();
    assert!(err.contains(&format!("keywarden: {n} findings")), "{err}");
    assert!(err.contains("2 inline-allowed"), "{err}");
}

#[test]
fn sarif_report_validates_against_the_sarif_2_1_0_schema() {
    let schema_text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sarif-schema-2.1.0.json"),
    )
    .unwrap();
    let schema: Value = serde_json::from_str(&schema_text).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let sarif: Value = serde_json::from_str(&report("sarif")).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&sarif)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    // The validator is not vacuous: a result without a message is refused.
    let mut broken = sarif.clone();
    broken["runs"][0]["results"][0]
        .as_object_mut()
        .unwrap()
        .remove("message");
    assert!(!validator.is_valid(&broken));
}
