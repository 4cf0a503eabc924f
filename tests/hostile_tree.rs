//! `keywarden scan` over a hostile tree: binary and invalid UTF-8 files, a
//! 100 MB single line, a 4 GiB sparse file, a symbolic-link loop and a
//! dangling link, an unreadable file and directory, a FIFO, very deep
//! nesting and file names with a newline and invalid UTF-8 — with keys
//! planted among them. The scan finishes, finds every key in a readable
//! file, says what it skipped and why, and stays under 256 MiB resident.
//!
//! The only test in this file: the peak RSS read here is that of every
//! child this process has waited for.

mod common;
use common::*;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

const MIB: u64 = 1 << 20;
const DEPTH: usize = 1000;

fn write(path: &Path, data: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap();
}

/// Makes every directory under `root` (and `root`) world-readable, so an
/// unprivileged user can walk it.
fn open_up(root: &Path) {
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
    for entry in std::fs::read_dir(root).unwrap() {
        let entry = entry.unwrap();
        let ft = entry.file_type().unwrap();
        if ft.is_dir() {
            open_up(&entry.path());
        } else if ft.is_file() {
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
}

/// Whether any user may run `bin`: it and every directory above it are
/// executable by others.
fn world_reachable(bin: &Path) -> bool {
    bin.ancestors()
        .all(|p| std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
}

#[test]
fn a_hostile_tree_is_scanned_whole_with_every_skip_explained_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut expected: Vec<(String, u64, u64)> = Vec::new();

    // Binary: NUL bytes first, the key among other bytes.
    let mut bin: Vec<u8> = (0..0x80u8)
        .filter(|&b| b != b'\n')
        .cycle()
        .take(4096)
        .collect();
    bin.extend_from_slice(gen_key().as_bytes());
    bin.extend_from_slice(&[0, 0xff, 0x00]);
    write(&root.join("blob.bin"), &bin);
    expected.push(("blob.bin".into(), 1, 4097));

    // Invalid UTF-8 around the key.
    let mut latin = b"\xff\xfe caf\xe9 key=".to_vec();
    latin.extend_from_slice(gen_key().as_bytes());
    latin.extend_from_slice(b" \xc3\n");
    write(&root.join("latin1.txt"), &latin);
    expected.push(("latin1.txt".into(), 1, 13));

    // A 100 MB single line with keys in its middle and at its end.
    let half = 50 * MIB as usize;
    let mut line = vec![b'a'; half];
    line.push(b' ');
    line.extend_from_slice(gen_key().as_bytes());
    line.push(b' ');
    line.extend(std::iter::repeat_n(b'b', half));
    line.push(b' ');
    let end_col = line.len() as u64 + 1;
    line.extend_from_slice(gen_key().as_bytes());
    write(&root.join("long-line.txt"), &line);
    drop(line);
    expected.push(("long-line.txt".into(), 1, half as u64 + 2));
    expected.push(("long-line.txt".into(), 1, end_col));

    // A 4 GiB sparse file with a key near its end.
    let sparse = std::fs::File::create(root.join("disk.img")).unwrap();
    sparse.set_len(4096 * MIB).unwrap();
    sparse
        .write_all_at(format!("\n{}\n", gen_key()).as_bytes(), 4096 * MIB - 8192)
        .unwrap();
    drop(sparse);
    expected.push(("disk.img".into(), 2, 1));

    // A link loop (followed with --follow) next to a key, and a dangling link.
    write(
        &root.join("loop/key.env"),
        format!("K={}\n", gen_key()).as_bytes(),
    );
    std::os::unix::fs::symlink("..", root.join("loop/up")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/keywarden-target", root.join("dangling")).unwrap();
    expected.push(("loop/key.env".into(), 1, 3));

    // Very deep nesting.
    let deep: std::path::PathBuf = std::iter::repeat_n("d", DEPTH).collect();
    write(&root.join(&deep).join("key.txt"), gen_key().as_bytes());
    expected.push((format!("{}/key.txt", deep.display()), 1, 1));

    // File names with a newline and with invalid UTF-8.
    write(&root.join("new\nline.txt"), gen_key().as_bytes());
    expected.push(("new\nline.txt".into(), 1, 1));
    write(
        &root.join(OsStr::from_bytes(b"bad\xff-name.txt")),
        gen_key().as_bytes(),
    );
    expected.push(("bad\u{fffd}-name.txt".into(), 1, 1));

    // A FIFO: never opened.
    assert!(
        Command::new("mkfifo")
            .arg(root.join("pipe"))
            .status()
            .unwrap()
            .success()
    );

    open_up(root);
    // Unreadable: a file and a directory, each holding a key that must not
    // be (and cannot be) reported.
    write(&root.join("locked.txt"), gen_key().as_bytes());
    write(&root.join("locked-dir/key.txt"), gen_key().as_bytes());
    std::fs::set_permissions(
        root.join("locked.txt"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    std::fs::set_permissions(
        root.join("locked-dir"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();

    // Root reads anything: run the scan as an unprivileged user then, from
    // a copy of the binary when that user cannot reach the built one.
    // SAFETY: geteuid has no preconditions.
    let as_root = unsafe { libc::geteuid() } == 0;
    let mut bin = assert_cmd::cargo::cargo_bin("keywarden");
    let bin_copy = tempfile::tempdir().unwrap();
    if as_root && !world_reachable(&bin) {
        std::fs::set_permissions(bin_copy.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let copy = bin_copy.path().join("keywarden");
        std::fs::copy(&bin, &copy).unwrap();
        bin = copy;
    }
    let mut cmd = Command::new(&bin);
    cmd.current_dir(root)
        .env("NO_COLOR", "1")
        .args(["scan", ".", "--format", "json", "--follow"])
        .args(["--max-file-size", "5GiB"]);
    if as_root {
        cmd.uid(65534).gid(65534);
    }
    let (out, peak) = common::output_and_peak_rss(&mut cmd);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let findings: Vec<serde_json::Value> =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stderr}"));

    expected.sort();
    assert_eq!(places(&findings), expected, "{stderr}");
    let binary: Vec<_> = findings
        .iter()
        .filter(|f| f["binary"].as_bool().unwrap())
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(binary, ["blob.bin", "disk.img"]);

    for (what, warning) in [
        (
            "unreadable file",
            "locked.txt: skipped: cannot read: Permission denied",
        ),
        (
            "unreadable dir",
            "locked-dir: skipped: cannot read: Permission denied",
        ),
        ("FIFO", "pipe: skipped: a FIFO, not a regular file"),
        ("dangling link", "dangling: skipped: broken symbolic link"),
        ("link loop", "loop/up: skipped: symbolic link loop"),
    ] {
        assert!(
            stderr.contains(warning),
            "no warning for the {what}: {stderr}"
        );
    }
    assert!(stderr.contains("; 5 warnings"), "{stderr}");
    // The newline in a name is escaped in the text report, never printed.
    let text = keywarden()
        .current_dir(root)
        .args(["scan", "new\nline.txt"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("new\\nline.txt"), "{text}");
    assert!(!text.contains("new\nline"), "{text}");
    assert!(peak < 256 * MIB, "peak RSS {} MiB", peak / MIB);
    eprintln!("peak RSS of the scan: {} MiB", peak / MIB);

    // Let the temp dir be removed.
    std::fs::set_permissions(
        root.join("locked-dir"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
}
