//! Releases as the Action and the pre-commit shim fetch them: assets made
//! by the release workflow's packaging script from this test build's
//! binary, served over HTTP from a directory.

use std::path::Path;

/// Serves the files under `root` over HTTP/1.1 on 127.0.0.1 (GET only, 404
/// for anything else) until the test ends; returns the base URL.
pub fn serve_dir(root: &Path) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let root = root.to_path_buf();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            // The rest of the head.
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let path = request.split(' ').nth(1).unwrap_or("/").to_string();
            let file = (!path.contains(".."))
                .then(|| root.join(path.trim_start_matches('/')))
                .filter(|f| f.is_file());
            let (status, body) = match file {
                Some(f) => ("200 OK", std::fs::read(f).unwrap()),
                None => ("404 Not Found", b"not found".to_vec()),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(&body);
        }
    });
    url
}

/// A release directory (`v{version}/…`, as GitHub serves a release's
/// assets) holding this test build's binary, packaged by the release
/// workflow's own script for `target`.
pub fn release_dir(version: &str, target: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(format!("v{version}"));
    let status = std::process::Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(".github/scripts/package.sh"))
        .args([target, version, "--binary"])
        .arg(assert_cmd::cargo::cargo_bin("keywarden"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    dir
}
