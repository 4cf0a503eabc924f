//! `keywarden serve --tls-cert --tls-key`: HTTPS with certificates made in
//! the test (rcgen), spoken to by real clients (curl, openssl s_client):
//! HTTP/2 by ALPN, TLS 1.3 only by default, and a certificate swapped on
//! SIGHUP or a file change while a keep-alive connection stays open.

mod common;

use common::db::TestDb;
use common::eventually;
use common::server::Server;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A test certificate authority, its PEM in `dir/ca.pem`.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    dir: tempfile::TempDir,
}

impl Ca {
    fn new() -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "keywarden test CA");
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), cert.pem()).unwrap();
        Ca {
            issuer: Issuer::new(params, key),
            dir,
        }
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Writes a certificate for 127.0.0.1 named `cn` and its key to
    /// `server.pem` and `server.key`.
    fn issue(&self, cn: &str) {
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        std::fs::write(self.key_file(), key.serialize_pem()).unwrap();
        std::fs::write(self.cert_file(), cert.pem()).unwrap();
    }

    fn cert_file(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    fn key_file(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }

    fn serve(&self, db: &TestDb, extra: &[&str]) -> Server {
        let (cert, key) = (self.cert_file(), self.key_file());
        let mut args = vec![
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        Server::start(db.url(), &args)
    }
}

/// Runs curl with `args`; returns (exit code, stdout, stderr).
fn curl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The subject CN of the certificate the server presents now.
fn presented_cn(server: &Server, ca: &Path) -> String {
    let (code, _, err) = curl(&[
        "-v",
        "-o",
        "/dev/null",
        "--cacert",
        ca.to_str().unwrap(),
        &server.url("/healthz"),
    ]);
    assert_eq!(code, 0, "{err}");
    err.lines()
        .find_map(|l| l.split("subject: CN=").nth(1))
        .unwrap_or_else(|| panic!("no subject in {err}"))
        .trim()
        .to_string()
}

#[test]
fn https_speaks_http2_and_http11_and_refuses_plain_http() {
    let db = TestDb::sqlite();
    let ca = Ca::new();
    ca.issue("first");
    let server = ca.serve(&db, &[]);
    assert!(
        server.base.starts_with("https://127.0.0.1:"),
        "{}",
        server.base
    );
    let cafile = ca.ca_file();
    let cafile = cafile.to_str().unwrap();
    let (code, out, err) = curl(&[
        "--http2",
        "--tlsv1.3",
        "--cacert",
        cafile,
        "-w",
        "\n%{http_version} %{http_code}",
        &server.url("/healthz"),
    ]);
    assert_eq!((code, out.as_str()), (0, "ok\n\n2 200"), "{err}");
    let (code, out, err) = curl(&[
        "--http1.1",
        "--cacert",
        cafile,
        "-w",
        "\n%{http_version} %{http_code}",
        &server.url("/healthz"),
    ]);
    assert_eq!((code, out.as_str()), (0, "ok\n\n1.1 200"), "{err}");
    // A real key over HTTP/2.
    let (key, _) = common::create_key(db.url(), &["--owner", "a@example.com", "--name", "n"]);
    let auth = format!("Authorization: Bearer {key}");
    let (code, out, err) = curl(&[
        "--http2",
        "--cacert",
        cafile,
        "-H",
        &auth,
        &server.url("/api/v1/key"),
    ]);
    assert_eq!(code, 0, "{err}");
    let body: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(body["data"]["name"], "n");
    // Unencrypted requests on the TLS port get no answer.
    let plain = server.base.replace("https://", "http://");
    let (code, out, _) = curl(&["-w", "%{http_code}", &format!("{plain}/healthz")]);
    assert_ne!(code, 0, "plain HTTP answered: {out}");
    assert!(!out.contains("200"));
}

#[test]
fn tls12_clients_are_refused_unless_allowed() {
    let db = TestDb::sqlite();
    let ca = Ca::new();
    ca.issue("first");
    let cafile = ca.ca_file();
    let cafile = cafile.to_str().unwrap();
    let tls12_only = |server: &Server| {
        curl(&[
            "--tlsv1.2",
            "--tls-max",
            "1.2",
            "--cacert",
            cafile,
            &server.url("/healthz"),
        ])
    };
    let openssl_tls12 = |server: &Server| {
        let port = server.base.rsplit(':').next().unwrap().to_string();
        Command::new("openssl")
            .args([
                "s_client",
                "-tls1_2",
                "-connect",
                &format!("127.0.0.1:{port}"),
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let strict = ca.serve(&db, &[]);
    let (code, out, err) = tls12_only(&strict);
    assert_ne!(code, 0, "a TLS 1.2 client was served: {out}");
    assert!(err.contains("alert") || err.contains("SSL"), "{err}");
    let out = openssl_tls12(&strict);
    assert!(!out.status.success(), "openssl -tls1_2 connected");
    let lenient = ca.serve(&db, &["--tls-min-version", "1.2"]);
    let (code, out, err) = tls12_only(&lenient);
    assert_eq!((code, out.as_str()), (0, "ok\n"), "{err}");
    let out = openssl_tls12(&lenient);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("TLSv1.2"), "{text}");
}

#[test]
fn a_bad_certificate_pair_stops_the_start_with_the_reason() {
    let db = TestDb::sqlite();
    let ca = Ca::new();
    ca.issue("first");
    let other = Ca::new();
    other.issue("other");
    let cases = [
        (
            other.cert_file(),
            ca.key_file(),
            "does not belong to the certificate",
        ),
        (ca.key_file(), ca.key_file(), "holds no PEM certificate"),
        (ca.cert_file(), ca.cert_file(), "holds no PEM private key"),
        (
            ca.dir.path().join("missing.pem"),
            ca.key_file(),
            "cannot read",
        ),
    ];
    for (cert, key, reason) in cases {
        let out = common::keywarden()
            .args(["serve", "--listen", "127.0.0.1:0", "--admin-listen", "none"])
            .args([
                "--database-url",
                db.url(),
                "--github-api-url",
                "http://127.0.0.1:9",
            ])
            .arg("--tls-cert")
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(reason), "{reason:?} in {stderr}");
    }
}

/// An `openssl s_client` session kept open: requests written to it go
/// over one TLS connection.
struct Session {
    child: std::process::Child,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl Session {
    fn open(server: &Server, ca: &Path) -> Session {
        let port = server.base.rsplit(':').next().unwrap().to_string();
        let mut child = Command::new("openssl")
            .args([
                "s_client",
                "-quiet",
                "-connect",
                &format!("127.0.0.1:{port}"),
            ])
            .arg("-CAfile")
            .arg(ca)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Session { child, seen }
    }

    fn answers(&self) -> usize {
        String::from_utf8_lossy(&self.seen.lock().unwrap())
            .matches("HTTP/1.1 200")
            .count()
    }

    fn ask(&mut self) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .unwrap();
        stdin.flush().unwrap();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn sighup_and_file_changes_swap_the_certificate_and_keep_open_connections() {
    let db = TestDb::sqlite();
    let ca = Ca::new();
    ca.issue("first");
    let server = ca.serve(&db, &[]);
    let cafile = ca.ca_file();
    assert_eq!(presented_cn(&server, &cafile), "first");
    let mut session = Session::open(&server, &cafile);
    session.ask();
    eventually("the first answer", Duration::from_secs(10), || {
        session.answers() == 1
    });

    ca.issue("second");
    server.signal(libc::SIGHUP);
    eventually("the new certificate", Duration::from_secs(10), || {
        presented_cn(&server, &cafile) == "second"
    });
    assert!(
        server
            .log_text()
            .lines()
            .any(|l| l.contains("TLS certificate reloaded") && l.contains("SIGHUP")),
        "{}",
        server.log_text()
    );
    // The connection opened before the swap still works.
    session.ask();
    eventually(
        "an answer on the old connection",
        Duration::from_secs(10),
        || session.answers() == 2,
    );

    // A broken file: the reload fails, says why, and the certificate stays.
    std::fs::write(ca.cert_file(), "not a certificate").unwrap();
    server.signal(libc::SIGHUP);
    eventually(
        "the failed reload is logged",
        Duration::from_secs(10),
        || {
            server
                .log_text()
                .contains("TLS certificate not reloaded; the one in use stays")
        },
    );
    assert!(server.log_text().contains("holds no PEM certificate"));
    assert_eq!(presented_cn(&server, &cafile), "second");

    // A change on disk is picked up without a signal.
    ca.issue("third");
    eventually("the file change", Duration::from_secs(20), || {
        presented_cn(&server, &cafile) == "third"
    });
    session.ask();
    eventually(
        "the old connection still answers",
        Duration::from_secs(10),
        || session.answers() == 3,
    );
}

/// A TLS client trusting `ca`, offering only HTTP/2.
fn h2_client_config(ca: &Path) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

/// An HTTP/2 connection that opens its receive window at zero and asks
/// for /healthz: the answer can never be sent. Returns when the server
/// closes the connection.
async fn stuck_h2_connection(addr: String, tls: Arc<rustls::ClientConfig>) -> Duration {
    let start = std::time::Instant::now();
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .unwrap();
    let (mut client, connection) = h2::client::Builder::new()
        .initial_window_size(0)
        .handshake::<_, axum::body::Bytes>(stream)
        .await
        .unwrap();
    let driver = tokio::spawn(connection);
    let request = axum::http::Request::get(format!("https://{addr}/healthz"))
        .body(())
        .unwrap();
    let (answer, _) = client.send_request(request, true).unwrap();
    // The head comes (headers are not flow-controlled); the body never can.
    let answer = answer.await.unwrap();
    assert_eq!(answer.status(), 200);
    let _ = driver.await;
    drop(answer);
    start.elapsed()
}

#[test]
fn http2_clients_that_never_open_their_window_are_shed_and_timed_out() {
    let db = TestDb::sqlite();
    let ca = Ca::new();
    ca.issue("first");
    let server = ca.serve(
        &db,
        &[
            "--max-connections",
            "20",
            "--request-timeout",
            "4s",
            "--body-timeout",
            "1s",
            "--store-timeout",
            "1s",
        ],
    );
    let addr = server.base.trim_start_matches("https://").to_string();
    let tls = h2_client_config(&ca.ca_file());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Twenty stuck connections fill the cap.
    let stuck: Vec<_> = (0..20)
        .map(|_| runtime.spawn(stuck_h2_connection(addr.clone(), tls.clone())))
        .collect();
    std::thread::sleep(Duration::from_millis(2500));
    // New clients still get in: the longest-stuck connection is shed for
    // the first (each later one takes the place the one before left).
    let cafile = ca.ca_file();
    for _ in 0..5 {
        let (code, out, err) = curl(&[
            "--http2",
            "--cacert",
            cafile.to_str().unwrap(),
            &server.url("/healthz"),
        ]);
        assert_eq!((code, out.as_str()), (0, "ok\n"), "{err}");
    }
    // Every stuck connection is closed: shed, or at the request timeout.
    runtime.block_on(async {
        for task in stuck {
            let held = tokio::time::timeout(Duration::from_secs(15), task)
                .await
                .expect("a stuck HTTP/2 connection is closed")
                .unwrap();
            assert!(held < Duration::from_secs(10), "held {held:?}");
        }
    });
    let metrics = common::server::get(&server.admin_url("/metrics"), &[]).body;
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0.0)
    };
    assert!(
        value("keywarden_connections_shed_total{how=\"shed\"}") >= 1.0,
        "{metrics}"
    );
    assert!(
        value("keywarden_connections_closed_total{reason=\"request_timeout\"}") >= 1.0,
        "{metrics}"
    );
}
