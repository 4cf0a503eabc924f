//! The release workflow: what it builds and how each asset is packaged
//! (its packaging script run here as the workflow runs it, on this build's
//! binary).

mod common;
use common::release::release_dir;
use serde_yaml::Value;
use std::path::Path;
use std::process::Command;

fn workflow() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(".github/workflows/release.yml");
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn the_workflow_builds_every_target_on_a_version_tag_and_attaches_them() {
    let wf = workflow();
    assert_eq!(wf["on"]["push"]["tags"][0], "v*");
    let matrix = wf["jobs"]["build"]["strategy"]["matrix"]["include"]
        .as_sequence()
        .unwrap();
    let mut targets: Vec<&str> = matrix
        .iter()
        .map(|m| m["target"].as_str().unwrap())
        .collect();
    targets.sort();
    assert_eq!(
        targets,
        [
            "aarch64-apple-darwin",
            "aarch64-unknown-linux-musl",
            "x86_64-apple-darwin",
            "x86_64-pc-windows-msvc",
            "x86_64-unknown-linux-musl",
        ]
    );
    let steps = wf["jobs"]["build"]["steps"].as_sequence().unwrap();
    let runs: Vec<&str> = steps.iter().filter_map(|s| s["run"].as_str()).collect();
    assert!(
        runs.iter()
            .any(|r| r.contains(".github/scripts/package.sh"))
    );
    // Linux binaries are static.
    let build = steps
        .iter()
        .find(|s| s["run"].as_str().is_some_and(|r| r.contains("package.sh")))
        .unwrap();
    assert!(
        build["env"]["RUSTFLAGS"]
            .as_str()
            .unwrap()
            .contains("crt-static")
    );
    let release = &wf["jobs"]["release"];
    assert_eq!(release["needs"], "build");
    assert_eq!(release["permissions"]["contents"], "write");
    let checks: Vec<&str> = release["steps"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|s| s["run"].as_str())
        .collect();
    assert!(checks.iter().any(|r| r.contains("sha256sum --check")));
}

#[test]
fn each_asset_holds_the_binary_and_a_checksum_sha256sum_accepts() {
    let release = release_dir("1.2.3", "x86_64-unknown-linux-musl");
    let dir = release.path().join("v1.2.3");
    let asset = "keywarden-1.2.3-x86_64-unknown-linux-musl.tar.gz";
    let check = Command::new("sha256sum")
        .args(["--check", "--strict", &format!("{asset}.sha256")])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");
    let list = Command::new("tar")
        .args(["-tzvf", asset])
        .current_dir(&dir)
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.lines().any(|l| l.starts_with("-rwxr-xr-x")
            && l.ends_with("keywarden-1.2.3-x86_64-unknown-linux-musl/keywarden")),
        "{list}"
    );
    assert!(
        list.contains("keywarden-1.2.3-x86_64-unknown-linux-musl/README.md"),
        "{list}"
    );
    // The same binary packs to the same bytes.
    let again = release_dir("1.2.3", "x86_64-unknown-linux-musl");
    assert_eq!(
        std::fs::read(dir.join(asset)).unwrap(),
        std::fs::read(again.path().join("v1.2.3").join(asset)).unwrap(),
        "packaging is reproducible"
    );
    // Bad arguments are refused before anything is built.
    let out = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(".github/scripts/package.sh"))
        .args(["x86_64-unknown-linux-musl", "1.2.3; rm -rf /"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a version"));
}
