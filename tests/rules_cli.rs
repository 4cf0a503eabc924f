//! `keywarden rules list` and `keywarden rules check`.

mod common;
use common::*;
use predicates::str::contains;

#[test]
fn rules_list_shows_the_builtin_openrouter_rule() {
    keywarden()
        .args(["rules", "list"])
        .assert()
        .code(0)
        .stdout(contains("openrouter-api-key  critical  sk-or-v"))
        .stdout(contains("builtin:openrouter.toml"));
    let out = keywarden()
        .args(["rules", "list", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["id"], "openrouter-api-key");
    assert!(v[0]["entropy"].is_null());
}

#[test]
fn rules_list_includes_config_rules_and_drops_disabled_ones() {
    let dir = temp_tree(&[(
        "kw.toml",
        b"disabled_rules = ['openrouter-api-key']\n[[rules]]\nid = 'x'\ndescription = 'X token'\nkeywords = ['x_']\nregex = 'x_[0-9]{6}'\n",
    )]);
    let out = keywarden()
        .current_dir(dir.path())
        .args(["rules", "list", "--config", "kw.toml"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("X token (kw.toml)"), "{text}");
    assert!(!text.contains("openrouter-api-key"));
}

#[test]
fn rules_check_passes_the_builtin_rules_and_the_shipped_rule_files() {
    keywarden()
        .args(["rules", "check"])
        .assert()
        .code(0)
        .stdout(contains("ok      active rules: openrouter-api-key"));
    keywarden()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["rules", "check", "rules/openrouter.toml"])
        .assert()
        .code(0);
}

#[test]
fn rules_check_reports_missed_examples_false_positives_and_keyword_gaps() {
    let dir = temp_tree(&[(
        "r.toml",
        br#"
[[rules]]
id = "weak"
description = "Weak rule"
keywords = ["tok_"]
regex = '''(?i)tok_[a-z]{4}'''
examples = ["tok_abcd", "TOK_ABCD", "nothing"]
negative_examples = ["tok_zzzz"]
"#,
    )]);
    keywarden()
        .current_dir(dir.path())
        .args(["rules", "check", "r.toml"])
        .assert()
        .code(1)
        .stdout(contains("FAILED  r.toml: weak"))
        .stdout(contains(
            "example #2 matches the regex but none of the keywords occurs",
        ))
        .stdout(contains("example #3 is not found: nothing"))
        .stdout(contains("negative example #1 is reported: tok_zzzz"));
}

#[test]
fn rules_check_on_a_malformed_file_names_file_line_and_reason() {
    let dir = temp_tree(&[(
        "bad.toml",
        b"[[rules]]\nid = 'a b'\ndescription = 'x'\nregex = 'x'\n",
    )]);
    keywarden()
        .current_dir(dir.path())
        .args(["rules", "check", "bad.toml"])
        .assert()
        .code(2)
        .stderr(contains("bad.toml:2:6: rule id 'a b' must be non-empty"));
    keywarden()
        .args(["rules", "check", "/no/such.toml"])
        .assert()
        .code(2)
        .stderr(contains("/no/such.toml: cannot read rule file"));
}
