//! Keys inside archives (issue 18): zip, jar, whl, tar, tar.gz, gz, bz2,
//! tar.xz, tar.zst, zst in several frames and archives inside archives, found by the real binary in a directory, in
//! history and in staged changes, named `ARCHIVE!MEMBER`; hostile archives
//! (bombs, members that climb out, an encrypted member, a broken zip, an xz
//! or zstd stream asking for gigabytes of memory) are skipped with a
//! warning and the scan goes on.

mod common;

use common::{GitRepo, keywarden, scan_json};
use serde_json::Value;
use std::collections::BTreeSet;

/// The archives of fixtures/archives/generate.py in a temp dir, and their
/// ground truth.
fn generated() -> (tempfile::TempDir, Value) {
    let dir = tempfile::tempdir().unwrap();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/archives/generate.py");
    let status = std::process::Command::new("python3")
        .arg(script)
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let truth = std::fs::read_to_string(dir.path().join("truth.json")).unwrap();
    (dir, serde_json::from_str(&truth).unwrap())
}

fn paths_of(findings: &[Value]) -> BTreeSet<&str> {
    findings
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect()
}

fn found(findings: &[Value]) -> BTreeSet<(String, u64, String)> {
    findings
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["line"].as_u64().unwrap(),
                f["secret"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn keys_in_archives_are_found_by_member_and_hostile_ones_are_skipped_with_a_warning() {
    let (dir, truth) = generated();
    let tree = dir.path().join("tree");
    let (findings, code, stderr) = scan_json(&tree, &["--show-secrets"]);
    assert_eq!(code, 1, "{stderr}");
    let want: BTreeSet<(String, u64, String)> = truth["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["path"].as_str().unwrap().to_string(),
                k["line"].as_u64().unwrap(),
                k["key"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(found(&findings), want, "{stderr}");
    for w in truth["warnings"].as_array().unwrap() {
        let (archive, says) = (w["archive"].as_str().unwrap(), w["says"].as_str().unwrap());
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(archive) && l.contains(says)),
            "no warning about {archive} saying {says:?}: {stderr}"
        );
    }
    for path in truth["silent"].as_array().unwrap() {
        let path = path.as_str().unwrap();
        assert!(
            findings.iter().all(|f| f["path"] != path),
            "{path} was scanned"
        );
    }
    // Every finding in an archive names its member.
    for f in &findings {
        let path = f["path"].as_str().unwrap();
        if let Some((archive, member)) = path.split_once('!') {
            assert_eq!(f["member"], member, "{f}");
            assert!(tree.join(archive).is_file(), "{archive}");
        }
    }
}

/// Text that starts with an archive's first bytes is scanned as it is when
/// it does not open as one: a key in it is not lost.
#[test]
fn a_file_that_only_starts_like_an_archive_is_scanned_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let k = common::gen_key();
    // "BZh9" and a block's magic ("1AY&SY") are text; so are the others.
    let heads: [(&str, &[u8]); 4] = [
        ("notes.txt", b"BZh91AY&SY is how bzip2 starts"),
        ("log.txt", b"\x28\xb5\x2f\xfd zstd magic, then text"),
        ("data.bin", b"\xfd7zXZ\0 xz magic, then text"),
        ("readme.txt", b"\x1f\x8b gzip magic, then text"),
    ];
    for (name, head) in heads {
        let mut bytes = head.to_vec();
        bytes.extend_from_slice(format!("\nkey = {k}\n").as_bytes());
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let (findings, code, stderr) = scan_json(dir.path(), &["--show-secrets"]);
    assert_eq!(code, 1, "{stderr}");
    let paths = paths_of(&findings);
    assert_eq!(
        paths,
        BTreeSet::from(["data.bin", "log.txt", "notes.txt", "readme.txt"]),
        "{stderr}"
    );
    assert!(findings.iter().all(|f| f["line"] == 2 && f["secret"] == k));
    for name in ["data.bin", "log.txt", "notes.txt", "readme.txt"] {
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(name) && l.contains("scanned as it is")),
            "no warning for {name}: {stderr}"
        );
    }
    // The same blobs in history.
    let repo = GitRepo::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), repo.path().join(entry.file_name())).unwrap();
    }
    repo.git(&["add", "."]);
    repo.git(&["commit", "-q", "-m", "notes"]);
    let (history, _, stderr) = common::history_json(repo.path(), &[]);
    let paths = paths_of(&history);
    assert_eq!(
        paths,
        BTreeSet::from(["data.bin", "log.txt", "notes.txt", "readme.txt"]),
        "{stderr}"
    );
}

#[test]
fn no_archives_scans_them_as_they_are_and_the_depth_is_a_flag() {
    let (dir, truth) = generated();
    let tree = dir.path().join("tree");
    let (findings, _, _) = scan_json(&tree, &["--no-archives"]);
    // Only what is stored uncompressed is seen: the jar's stored member and
    // the plain tar's, as bytes of the archive file itself.
    let paths = paths_of(&findings);
    assert!(paths.iter().all(|p| !p.contains('!')), "{paths:?}");
    assert!(paths.contains("lib/client.jar"), "{paths:?}");
    // Depth 1: the zip inside release.tar.gz is not opened, and says so.
    let (findings, _, stderr) = scan_json(&tree, &["--max-archive-depth", "1"]);
    let nested = "release.tar.gz!bundle/app.zip!config/settings.json";
    assert!(findings.iter().all(|f| f["path"] != nested));
    assert!(stderr.contains("--max-archive-depth"), "{stderr}");
    let all = truth["keys"].as_array().unwrap().len();
    assert_eq!(findings.len(), all - 1);
}

#[test]
fn an_archive_limit_stops_expansion_with_a_warning() {
    let (dir, _) = generated();
    let tree = dir.path().join("tree");
    let (findings, code, stderr) = scan_json(&tree.join("logs"), &["--max-archive-bytes", "100"]);
    assert_eq!((findings.len(), code), (0, 0), "{findings:?}");
    assert!(stderr.contains("--max-archive-bytes"), "{stderr}");
    // The padded log expands about 150:1: found by default (above), and
    // cut short as a bomb with a lower ratio.
    let padded = "padded.log.zst!padded.log";
    let (findings, _, stderr) = scan_json(&tree.join("logs"), &["--max-archive-ratio", "100"]);
    assert!(findings.iter().all(|f| f["path"] != padded), "{findings:?}");
    assert!(
        stderr.contains("padded.log.zst") && stderr.contains("--max-archive-ratio"),
        "{stderr}"
    );
    let (findings, _, stderr) = scan_json(&tree.join("logs"), &[]);
    assert!(findings.iter().any(|f| f["path"] == padded), "{stderr}");
    let out = keywarden()
        .args(["scan", "--max-archive-depth", "0", "."])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn history_and_staged_open_archive_blobs() {
    let (dir, _) = generated();
    let tgz = std::fs::read(dir.path().join("tree/dist/leaky-pkg-1.0.0.tgz")).unwrap();
    let repo = GitRepo::new();
    std::fs::create_dir_all(repo.path().join("dist")).unwrap();
    std::fs::write(repo.path().join("dist/pkg.tgz"), &tgz).unwrap();
    repo.git(&["add", "dist/pkg.tgz"]);
    // Staged: the member's key, named by the archive's path.
    let out = keywarden()
        .current_dir(repo.path())
        .args(["staged", "--format", "json", "-q"])
        .output()
        .unwrap();
    let staged: Vec<Value> = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(staged.len(), 1, "{staged:?}");
    assert_eq!(staged[0]["path"], "dist/pkg.tgz!package/.env");
    repo.git(&["commit", "-q", "-m", "ship the package"]);
    // History: the same, attributed to the commit; a rename is not a new
    // finding, and --all-occurrences names both places.
    repo.git(&["mv", "dist/pkg.tgz", "dist/renamed.tgz"]);
    repo.git(&["commit", "-q", "-m", "rename"]);
    let (first, _, stderr) = common::history_json(repo.path(), &[]);
    assert_eq!(first.len(), 1, "{stderr}");
    assert_eq!(first[0]["path"], "dist/pkg.tgz!package/.env");
    let (history, _, stderr) = common::history_json(repo.path(), &["--all-occurrences"]);
    let paths = paths_of(&history);
    assert_eq!(
        paths,
        BTreeSet::from(["dist/pkg.tgz!package/.env", "dist/renamed.tgz!package/.env"]),
        "{stderr}"
    );
    for f in &history {
        assert_eq!(f["member"], "package/.env");
        assert!(f["commit"]["id"].is_string());
        assert_eq!(f["line"], 3);
    }
}

#[test]
fn sarif_points_at_the_archive_and_names_the_member() {
    let (dir, _) = generated();
    let out = keywarden()
        .current_dir(dir.path().join("tree/dist"))
        .args(["scan", "-q", "--format", "sarif"])
        .output()
        .unwrap();
    let sarif: Value = serde_json::from_slice(&out.stdout).unwrap();
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    for r in results {
        let uri = r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            .as_str()
            .unwrap();
        assert!(!uri.contains('!'), "{uri}");
        let member = r["properties"]["member"].as_str().unwrap();
        assert!(r["message"]["text"].as_str().unwrap().contains(member));
    }
    let text = keywarden()
        .current_dir(dir.path().join("tree/dist"))
        .args(["scan"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("leaky-pkg-1.0.0.tgz!package/.env"), "{text}");
}

/// A member far larger than memory should hold is streamed, as a plain
/// file is: a tar holding one 512 MiB member (sparse on disk: cheap to
/// make, but every byte is read), its key near the end.
#[test]
fn a_half_gib_member_is_streamed_in_bounded_memory() {
    let k = common::gen_key();
    let dir = tempfile::tempdir().unwrap();
    let size: u64 = 512 << 20;
    let mut header = tar::Header::new_gnu();
    header.set_path("data/huge.bin").unwrap();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_cksum();
    let file = std::fs::File::create(dir.path().join("huge.tar")).unwrap();
    use std::os::unix::fs::FileExt;
    file.write_all_at(header.as_bytes(), 0).unwrap();
    file.write_all_at(format!("\n{k}\n").as_bytes(), 512 + size - 4096)
        .unwrap();
    // The member, then two zero blocks: the end of the archive.
    file.set_len(512 + size + 1024).unwrap();
    drop(file);
    let (f, peak) =
        common::scan_json_and_peak_rss(dir.path(), &["--max-file-size", "2GiB", "--show-secrets"]);
    assert_eq!(
        found(&f),
        BTreeSet::from([("huge.tar!data/huge.bin".to_string(), 2, k)])
    );
    assert!(peak < 256 << 20, "peak RSS {} MiB", peak >> 20);
}
