//! Keys hidden in encodings (issue 18): base64, percent-encoding and
//! escapes, nested, found by the real binary in a directory, on stdin, in
//! history and in staged changes, placed at the encoded span and reported
//! with their encoding chain in every format.

mod common;

use common::{GitRepo, gen_key, keywarden, scan_json, temp_tree};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;

fn encoded_tree() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/encoded/tree")
}

fn truth() -> Vec<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/encoded/tree.truth.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// (path, line, column, key, encoding chain) of each finding or truth entry.
type Place = (String, u64, u64, String, Vec<String>);

fn place_of(v: &Value, key_field: &str) -> Place {
    let path = v["path"].as_str().unwrap();
    (
        // Paths are reported from the repository's root.
        path.strip_prefix("fixtures/encoded/tree/")
            .unwrap_or(path)
            .to_string(),
        v["line"].as_u64().unwrap(),
        v["column"].as_u64().unwrap(),
        v[key_field].as_str().unwrap().to_string(),
        v["encoding"]
            .as_array()
            .map(|a| a.iter().map(|e| e.as_str().unwrap().to_string()).collect())
            .unwrap_or_default(),
    )
}

fn b64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk.len();
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= n {
                out.push(A[((v >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn every_encoded_fixture_key_is_found_with_its_chain_at_its_span() {
    let (findings, code, stderr) = scan_json(&encoded_tree(), &["--show-secrets", "--no-ignore"]);
    assert_eq!(code, 1, "{stderr}");
    let got: BTreeSet<Place> = findings.iter().map(|f| place_of(f, "secret")).collect();
    let want: BTreeSet<Place> = truth().iter().map(|t| place_of(t, "key")).collect();
    assert_eq!(got, want);
    assert_eq!(findings.len(), want.len(), "no finding twice");
    // The decoys (a key one digit short, upper-case hex, random base64)
    // stay silent.
    assert!(
        findings
            .iter()
            .all(|f| !f["path"].as_str().unwrap().ends_with("plain/decoy.txt"))
    );
}

#[test]
fn a_decoded_key_has_the_plain_keys_fingerprint_and_one_baseline_entry_covers_both() {
    let (findings, _, _) = scan_json(&encoded_tree().join("plain"), &[]);
    assert_eq!(findings.len(), 2, "{findings:?}");
    assert_eq!(findings[0]["fingerprint"], findings[1]["fingerprint"]);
    let plain: Vec<&Value> = findings
        .iter()
        .filter(|f| f["encoding"].is_null())
        .collect();
    assert_eq!(plain.len(), 1, "the plain one has no chain: {findings:?}");
    let dir = tempfile::tempdir().unwrap();
    let baseline = dir.path().join("baseline.json");
    std::fs::write(&baseline, serde_json::to_vec(&vec![plain[0]]).unwrap()).unwrap();
    let (left, code, _) = scan_json(
        &encoded_tree().join("plain"),
        &["--baseline", baseline.to_str().unwrap()],
    );
    assert_eq!((left.len(), code), (0, 0), "{left:?}");
}

#[test]
fn the_decode_depth_is_what_the_flag_says() {
    let count = |depth: &str| {
        let (findings, _, _) = scan_json(
            &encoded_tree(),
            &["--no-ignore", "--max-decode-depth", depth],
        );
        findings
    };
    let off = count("0");
    assert_eq!(off.len(), 1, "only the plain key: {off:?}");
    let one = count("1");
    assert_eq!(
        one.len(),
        truth().len() - 1,
        "all but the Helm value's nested key"
    );
    assert!(one.iter().all(|f| {
        !f["path"]
            .as_str()
            .unwrap()
            .ends_with("k8s/helm-values.yaml")
    }));
    assert_eq!(count("2").len(), truth().len());
    let out = keywarden()
        .args(["scan", "--max-decode-depth", "9", "."])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--max-decode-depth"));
}

#[test]
fn every_report_format_names_the_encoding() {
    let key = gen_key();
    let secret = format!("data:\n  OPENROUTER_API_KEY: {}\n", b64(key.as_bytes()));
    let tree = temp_tree(&[("secret.yaml", secret.as_bytes())]);
    let run = |format: &str| {
        let out = keywarden()
            .current_dir(tree.path())
            .args(["scan", "-q", "--format", format])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8(out.stdout).unwrap()
    };
    let json: Value = serde_json::from_str(&run("json")).unwrap();
    assert_eq!(json[0]["encoding"], serde_json::json!(["base64"]));
    assert_eq!(
        (json[0]["line"].as_u64(), json[0]["column"].as_u64()),
        (Some(2), Some(23))
    );
    let line: Value = serde_json::from_str(run("jsonl").lines().next().unwrap()).unwrap();
    assert_eq!(line["encoding"], serde_json::json!(["base64"]));
    let sarif: Value = serde_json::from_str(&run("sarif")).unwrap();
    let result = &sarif["runs"][0]["results"][0];
    assert_eq!(
        result["properties"]["encoding"],
        serde_json::json!(["base64"])
    );
    assert!(
        result["message"]["text"]
            .as_str()
            .unwrap()
            .contains("decoded from base64")
    );
    for format in ["text", "github", "markdown"] {
        let out = run(format);
        assert!(out.contains("decoded from base64"), "{format}: {out}");
        assert!(!out.contains(&key), "{format} shows the key");
    }
}

#[test]
fn stdin_history_and_staged_decode_too() {
    let key = gen_key();
    let line = format!("auth: {}\n", b64(format!("user:{key}").as_bytes()));
    let out = keywarden()
        .args(["scan", "-", "--format", "json", "-q", "--show-secrets"])
        .write_stdin(line.clone())
        .output()
        .unwrap();
    let found: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["secret"], key.as_str());
    assert_eq!(found[0]["encoding"], serde_json::json!(["base64"]));

    let repo = GitRepo::new();
    repo.commit(&[("deploy/auth.yaml", Some(&line))], "add auth");
    let (history, _, stderr) = common::history_json(repo.path(), &[]);
    assert_eq!(history.len(), 1, "{stderr}");
    assert_eq!(history[0]["encoding"], serde_json::json!(["base64"]));
    assert_eq!(history[0]["path"], "deploy/auth.yaml");
    assert!(history[0]["commit"]["id"].is_string());

    let other = gen_key();
    let staged = format!("x = \"{}\"\n", b64(other.as_bytes()));
    std::fs::write(repo.path().join("new.txt"), &staged).unwrap();
    repo.git(&["add", "new.txt"]);
    let out = keywarden()
        .current_dir(repo.path())
        .args(["staged", "--format", "json", "-q"])
        .output()
        .unwrap();
    let staged_found: Vec<Value> = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(staged_found.len(), 1, "{staged_found:?}");
    assert_eq!(staged_found[0]["path"], "new.txt");
    assert_eq!(staged_found[0]["encoding"], serde_json::json!(["base64"]));
}

#[test]
fn an_inline_allow_on_the_encoded_line_suppresses_the_decoded_key() {
    let key = gen_key();
    let text = format!("token: {} # keywarden:allow\n", b64(key.as_bytes()));
    let tree = temp_tree(&[("a.yaml", text.as_bytes())]);
    let (findings, code, _) = scan_json(tree.path(), &[]);
    assert_eq!((findings.len(), code), (0, 0), "{findings:?}");
}

#[test]
fn hostile_encodings_end_without_a_crash() {
    let key = gen_key();
    let encoded_key = b64(key.as_bytes());
    // A 256 KiB base64 run around a key, a 4 MiB one (decoded around the
    // key only), broken escapes, a lone surrogate, percent signs without
    // hex, and a key nested ten deep (past the depth: not found, not a
    // crash).
    let mut long = "QUFB".repeat(1 << 16);
    long.insert_str(long.len() / 2, &encoded_key);
    let mut huge = "QUFB".repeat(1 << 20);
    huge.insert_str(huge.len() / 2 + 4, &encoded_key);
    let mut deep = key.clone();
    for _ in 0..10 {
        deep = b64(deep.as_bytes());
    }
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("long.txt", long.into_bytes()),
        ("huge.txt", huge.into_bytes()),
        (
            "escapes.js",
            b"var a=\"sk\\u002dor\\u002dv\\uD800\\x\\u12\"; b=\"sk%2Dor%2Dv1%2D%zz%\";".to_vec(),
        ),
        ("deep.txt", deep.into_bytes()),
        (
            "binary.bin",
            [&[0u8, 1, 2][..], encoded_key.as_bytes()].concat(),
        ),
    ];
    let files: Vec<(&str, &[u8])> = files.iter().map(|(n, d)| (*n, d.as_slice())).collect();
    let tree = temp_tree(&files);
    let (findings, code, stderr) = scan_json(tree.path(), &["--show-secrets"]);
    assert_eq!(code, 1, "{stderr}");
    let mut paths: Vec<&str> = findings
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    paths.sort();
    // The key in the long run is found, placed at the run's start; the
    // binary file's too; nothing in the broken escapes.
    assert_eq!(
        paths,
        ["binary.bin", "huge.txt", "long.txt"],
        "{findings:?}"
    );
    let long = findings.iter().find(|f| f["path"] == "long.txt").unwrap();
    assert_eq!(long["secret"], key.as_str());
    assert_eq!(
        (long["line"].as_u64(), long["column"].as_u64()),
        (Some(1), Some(1))
    );
}
