//! `keywarden scan` behaviour: what is walked, configuration, baselines,
//! stdin, large files and exit codes — each in a temp tree.

mod common;
use common::*;
use predicates::str::contains;
use serde_json::Value;
use std::process::Command as StdCommand;

#[test]
fn clean_tree_exits_zero_and_exit_code_flag_changes_the_found_status() {
    let clean = temp_tree(&[("a.txt", b"nothing here")]);
    keywarden()
        .current_dir(clean.path())
        .args(["scan", "-q"])
        .assert()
        .code(0);
    let k = gen_key();
    let dirty = temp_tree(&[("a.txt", k.as_bytes())]);
    keywarden()
        .current_dir(dirty.path())
        .args(["scan", "-q"])
        .assert()
        .code(1);
    keywarden()
        .current_dir(dirty.path())
        .args(["scan", "-q", "--exit-code", "7"])
        .assert()
        .code(7);
}

#[test]
fn missing_path_is_an_error_naming_it() {
    keywarden()
        .args(["scan", "/no/such/dir"])
        .assert()
        .code(2)
        .stderr(contains("/no/such/dir: no such file or directory"));
}

#[test]
fn gitignore_is_respected_in_a_git_repository_and_hidden_files_are_scanned() {
    let (a, b) = (gen_key(), gen_key());
    let dir = temp_tree(&[
        (".gitignore", b"build/\n"),
        ("build/out.txt", a.as_bytes()),
        (".env", format!("KEY={b}\n").as_bytes()),
    ]);
    assert!(
        StdCommand::new("git")
            .arg("init")
            .arg("-q")
            .arg(dir.path())
            .status()
            .unwrap()
            .success()
    );
    let (f, _, _) = scan_json(dir.path(), &[]);
    assert_eq!(places(&f), [(".env".to_string(), 1, 5)]);
    let (f, _, _) = scan_json(dir.path(), &["--no-ignore"]);
    assert_eq!(f.len(), 2);
}

#[test]
fn never_descends_into_dot_git_even_with_no_ignore() {
    let k = gen_key();
    let dir = temp_tree(&[(".git/config", k.as_bytes()), ("ok.txt", b"x")]);
    let (f, code, _) = scan_json(dir.path(), &["--no-ignore"]);
    assert!(f.is_empty());
    assert_eq!(code, 0);
}

#[test]
fn symlinks_are_followed_only_with_follow_and_broken_links_warn() {
    let k = gen_key();
    let target = temp_tree(&[("secret.txt", k.as_bytes())]);
    let dir = temp_tree(&[("plain.txt", b"x")]);
    std::os::unix::fs::symlink(
        target.path().join("secret.txt"),
        dir.path().join("link.txt"),
    )
    .unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", dir.path().join("broken")).unwrap();
    let (f, _, err) = scan_json(dir.path(), &[]);
    assert!(f.is_empty());
    assert!(
        err.contains("warning: broken: skipped: broken symbolic link"),
        "{err}"
    );
    let (f, _, _) = scan_json(dir.path(), &["--follow"]);
    assert_eq!(places(&f), [("link.txt".to_string(), 1, 1)]);
}

#[test]
fn symlink_loop_with_follow_warns_and_the_scan_goes_on() {
    let k = gen_key();
    let dir = temp_tree(&[("sub/key.txt", k.as_bytes())]);
    std::os::unix::fs::symlink("..", dir.path().join("sub/up")).unwrap();
    let (f, code, err) = scan_json(dir.path(), &["--follow"]);
    assert_eq!(code, 1);
    assert_eq!(places(&f), [("sub/key.txt".to_string(), 1, 1)]);
    assert!(err.contains("symbolic link loop"), "{err}");
}

#[test]
fn fifos_are_skipped_without_blocking() {
    let k = gen_key();
    let dir = temp_tree(&[("key.txt", k.as_bytes())]);
    let fifo = dir.path().join("pipe");
    assert!(
        StdCommand::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let (f, _, _) = scan_json(dir.path(), &[]);
    assert_eq!(f.len(), 1);
}

#[test]
fn files_above_max_file_size_are_skipped_with_a_warning() {
    let k = gen_key();
    let big = format!("{}{k}", "x".repeat(2000));
    let dir = temp_tree(&[("big.txt", big.as_bytes()), ("small.txt", k.as_bytes())]);
    let (f, _, err) = scan_json(dir.path(), &["--max-file-size", "1KiB"]);
    assert_eq!(places(&f), [("small.txt".to_string(), 1, 1)]);
    assert!(
        err.contains("big.txt: skipped: 2073 bytes is above --max-file-size (1024 bytes)"),
        "{err}"
    );
    keywarden()
        .args(["scan", "--max-file-size", "lots"])
        .assert()
        .code(2)
        .stderr(contains("invalid size 'lots'"));
}

#[test]
fn large_file_keys_across_chunk_boundaries_are_found_with_right_lines() {
    // 20 MiB: read by mmap in 8 MiB chunks; keys straddle both boundaries.
    let line = "0123456789abcdef ".repeat(4) + "\n"; // 69 bytes
    let mut data = Vec::new();
    let mut want = Vec::new();
    for boundary in [8usize << 20, 16 << 20] {
        while data.len() < boundary - 30 {
            data.extend_from_slice(line.as_bytes());
        }
        let k = gen_key();
        let col = data.len() - data.iter().rposition(|&b| b == b'\n').unwrap();
        want.push((
            "big.log".to_string(),
            data.iter().filter(|&&b| b == b'\n').count() as u64 + 1,
            col as u64,
        ));
        data.extend_from_slice(k.as_bytes());
        data.push(b'\n');
    }
    while data.len() < 20 << 20 {
        data.extend_from_slice(line.as_bytes());
    }
    let dir = temp_tree(&[("big.log", &data)]);
    let (f, _, _) = scan_json(dir.path(), &[]);
    assert_eq!(places(&f), want);
}

#[test]
fn stdin_is_scanned_under_stdin_name() {
    let k = gen_key();
    let out = keywarden()
        .args([
            "scan",
            "-",
            "-q",
            "-f",
            "json",
            "--stdin-name",
            "pasted.env",
        ])
        .write_stdin(format!("line one\nKEY={k}\n"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let f: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(places(&f), [("pasted.env".to_string(), 2, 5)]);
    keywarden()
        .args(["scan", "-", "-q"])
        .write_stdin("no key")
        .assert()
        .code(0);
    keywarden()
        .args(["scan", "-", "."])
        .assert()
        .code(2)
        .stderr(contains("cannot be combined"));
}

#[test]
fn config_at_the_scan_root_adds_rules_disables_rules_and_allowlists_paths() {
    let k = gen_key();
    let dir = temp_tree(&[
        (
            ".keywarden.toml",
            br#"
[allowlist]
paths = ["vendor/**"]

[[rules]]
id = "internal-token"
description = "Internal service token"
keywords = ["itk_"]
regex = '''itk_[A-Za-z0-9]{20}'''
severity = "medium"
examples = ["itk_abcdefghij0123456789"]
"#,
        ),
        (
            "app.py",
            format!("A = '{k}'\nB = 'itk_abcdefghij0123456789'\n").as_bytes(),
        ),
        ("vendor/lib.py", k.as_bytes()),
    ]);
    let (f, _, _) = scan_json(dir.path(), &[]);
    let rules: Vec<_> = f
        .iter()
        .map(|f| (f["rule_id"].as_str().unwrap(), f["path"].as_str().unwrap()))
        .collect();
    assert_eq!(
        rules,
        [
            ("openrouter-api-key", "app.py"),
            ("internal-token", "app.py")
        ]
    );

    let cfg = dir.path().join("other.toml");
    std::fs::write(&cfg, "disabled_rules = [\"openrouter-api-key\"]\n").unwrap();
    let (f, code, _) = scan_json(dir.path(), &["--config", cfg.to_str().unwrap()]);
    assert!(f.is_empty(), "{f:?}");
    assert_eq!(code, 0);
}

#[test]
fn malformed_config_fails_with_file_line_and_reason() {
    let dir = temp_tree(&[(
        ".keywarden.toml",
        b"[[rules]]\nid = \"bad\"\ndescription = \"x\"\nregex = '''(unclosed'''\n",
    )]);
    keywarden()
        .current_dir(dir.path())
        .args(["scan"])
        .assert()
        .code(2)
        .stderr(contains("./.keywarden.toml:4:9: rule 'bad': invalid regex"));
}

#[test]
fn rule_allowlist_stopwords_suppress_and_are_counted() {
    let k = gen_key();
    let dir = temp_tree(&[
        (
            ".keywarden.toml",
            br#"
[[rules]]
id = "demo"
description = "Demo"
keywords = ["demo_"]
regex = '''demo_[a-z]{10}'''
examples = ["demo_abcdefghij"]
[rules.allowlist]
stopwords = ["sample"]
"#,
        ),
        (
            "a.txt",
            format!("demo_xsamplexyz demo_realsecret {k}").as_bytes(),
        ),
    ]);
    let out = keywarden()
        .current_dir(dir.path())
        .args(["scan", "-f", "jsonl"])
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 allowlisted"));
}

#[test]
fn baseline_suppresses_known_findings_and_reports_new_ones() {
    let (a, b) = (gen_key(), gen_key());
    let dir = temp_tree(&[("old.env", format!("KEY={a}\n").as_bytes())]);
    let base = dir.path().join("baseline.json");
    keywarden()
        .current_dir(dir.path())
        .args(["scan", "-q", "--write-baseline", "baseline.json"])
        .assert()
        .code(1);
    let text = std::fs::read_to_string(&base).unwrap();
    assert!(
        !text.contains(&a[9..]),
        "the baseline holds no whole secret"
    );
    // Moving the key to another line keeps its fingerprint.
    std::fs::write(dir.path().join("old.env"), format!("# moved\n\nKEY={a}\n")).unwrap();
    let (f, code, _) = scan_json(dir.path(), &["--baseline", "baseline.json"]);
    assert!(f.is_empty());
    assert_eq!(code, 0);
    std::fs::write(dir.path().join("new.env"), &b).unwrap();
    let (f, code, _) = scan_json(dir.path(), &["--baseline", "baseline.json"]);
    assert_eq!(places(&f), [("new.env".to_string(), 1, 1)]);
    assert_eq!(code, 1);
    std::fs::write(&base, "not json").unwrap();
    keywarden()
        .current_dir(dir.path())
        .args(["scan", "--baseline", "baseline.json"])
        .assert()
        .code(2)
        .stderr(contains(
            "baseline.json: not a keywarden JSON or JSONL report",
        ));
}

#[test]
fn scanning_a_single_file_argument_reports_its_path() {
    let k = gen_key();
    let dir = temp_tree(&[("sub/one.txt", k.as_bytes())]);
    let (f, _, _) = scan_json(dir.path(), &["sub/one.txt"]);
    assert_eq!(places(&f), [("sub/one.txt".to_string(), 1, 1)]);
}

#[test]
fn a_half_gib_file_is_scanned_in_bounded_memory() {
    // Sparse: cheap to make, but every page is mapped and read.
    let k = gen_key();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.bin");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(512 << 20).unwrap();
    use std::os::unix::fs::FileExt;
    file.write_all_at(format!("\n{k}\n").as_bytes(), (512 << 20) - 4096)
        .unwrap();
    drop(file);
    let (f, peak) = common::scan_json_and_peak_rss(dir.path(), &["--max-file-size", "2GiB"]);
    assert_eq!(places(&f), [("huge.bin".to_string(), 2, 1)]);
    assert!(f[0]["binary"].as_bool().unwrap());
    assert!(peak < 256 << 20, "peak RSS {} MiB", peak >> 20);
}

#[test]
fn keys_glued_on_the_left_by_escapes_encodings_and_string_tables_are_found() {
    let contexts = [
        r#"{"cell_type": "code", "source": "import os\nKEY\n"}"#,
        r#""env": "A=1\tKEY""#,
        r#""log": "line\rKEY""#,
        r#""path": "C:\\keys\\KEY""#,
        "GET /v1/chat?user=7%26key%3DKEY%26m=x HTTP/1.1",
        r#"const cfg = "key\u003dKEY";"#,
        "\u{0}\u{1}application/jsonBearerKEY\u{0}text/plain",
        "token=xKEY",
    ];
    for context in contexts {
        let key = gen_key();
        let text = context.replace("KEY", &key);
        let out = keywarden()
            .args(["scan", "-", "-q", "--format", "json", "--show-secrets"])
            .write_stdin(text.clone())
            .output()
            .unwrap();
        let findings: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        let secrets: Vec<_> = findings
            .iter()
            .map(|f| f["secret"].as_str().unwrap())
            .collect();
        assert_eq!(secrets, [key.as_str()], "in {text:?}");
    }
    // The right-hand side stays strict: one hex digit, letter or _ more and
    // it is not a key.
    for glued in ["0", "a", "Z", "_"] {
        let text = format!("KEY={}{glued}\n", gen_key());
        keywarden()
            .args(["scan", "-", "-q"])
            .write_stdin(text)
            .assert()
            .code(0);
    }
}
