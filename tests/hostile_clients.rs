//! `keywarden serve` faced with clients that mean harm and hold no
//! credentials: bodies declared big and sent slowly, requests sent half way,
//! more connections than the process has descriptors, and header bytes that
//! once panicked the partner route. Every client is a real socket against
//! the real binary.

mod common;

use common::db::TestDb;
use common::github::{Signer, serve_trusting};
use common::server::{Server, get};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PATH: &str = "/github/secret-scanning";
const MIB: u64 = 1 << 20;

/// Lets this test process open thousands of sockets.
fn raise_own_descriptor_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on our own process.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    limit.rlim_cur
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn addr(server: &Server) -> String {
    server.base.trim_start_matches("http://").to_string()
}

/// What one hostile connection saw.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    /// An HTTP answer: status and Retry-After.
    Answer(u16, Option<String>),
    /// The server closed (or reset) the connection without an answer.
    Closed,
    /// Nothing happened before the client gave up.
    Nothing,
    /// The connection could not be made.
    NoConnection,
}

/// Reads until the end of a response head, EOF or `limit`.
async fn read_answer(stream: &mut TcpStream, limit: Duration) -> Seen {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return Seen::Nothing,
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                head.extend_from_slice(&buf[..n]);
                if head.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
        }
    }
    let text = String::from_utf8_lossy(&head);
    let Some(status) = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|s| s.parse().ok())
    else {
        return Seen::Closed;
    };
    let retry_after = text.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("retry-after")
            .then(|| value.trim().to_string())
    });
    Seen::Answer(status, retry_after)
}

/// Opens `n` connections that each send `head`, then `body_len` bytes of
/// body (stopping when the server closes), and wait up to `wait` for an
/// answer. Returns what each saw and when.
fn slow_bodies(
    server: &Server,
    n: usize,
    head: String,
    body_len: u64,
    wait: Duration,
) -> Vec<(Seen, Duration)> {
    slow_bodies_with(server, vec![head; n], body_len, wait)
}

/// [`slow_bodies`] with a head of its own for each connection.
fn slow_bodies_with(
    server: &Server,
    heads: Vec<String>,
    body_len: u64,
    wait: Duration,
) -> Vec<(Seen, Duration)> {
    let addr = addr(server);
    let chunk: Arc<[u8]> = vec![b' '; 64 * 1024].into();
    runtime().block_on(async move {
        let mut tasks = Vec::new();
        for head in heads {
            let (addr, chunk) = (addr.clone(), chunk.clone());
            tasks.push(tokio::spawn(async move {
                let start = Instant::now();
                let Ok(mut stream) = TcpStream::connect(&addr).await else {
                    return (Seen::NoConnection, start.elapsed());
                };
                if stream.write_all(head.as_bytes()).await.is_ok() {
                    let mut left = body_len;
                    while left > 0 {
                        let part = left.min(chunk.len() as u64) as usize;
                        // The server may answer and close before the body
                        // is sent: then writing fails, and that is fine.
                        match tokio::time::timeout(wait, stream.write_all(&chunk[..part])).await {
                            Ok(Ok(())) => left -= part as u64,
                            _ => break,
                        }
                    }
                }
                let seen = read_answer(&mut stream, wait).await;
                (seen, start.elapsed())
            }));
        }
        let mut seen = Vec::new();
        for task in tasks {
            seen.push(task.await.unwrap());
        }
        seen
    })
}

fn partner_head(extra: &str, content_length: u64) -> String {
    format!(
        "POST {PATH} HTTP/1.1\r\nHost: keywarden.test\r\nContent-Type: application/json\r\n\
         {extra}Content-Length: {content_length}\r\n\r\n"
    )
}

/// A header pair naming `signer`'s key with a well-formed signature that
/// does not match any body we send.
fn signed_looking(signer: &Signer) -> String {
    format!(
        "Github-Public-Key-Identifier: {}\r\nGithub-Public-Key-Signature: {}\r\n",
        signer.id,
        signer.sign(b"some other body")
    )
}

/// A signed (empty) report, as GitHub sends one, with `extra` headers.
fn real_report(server: &Server, signer: &Signer, extra: &[(&str, &str)]) -> common::server::Reply {
    let body = b"[]";
    let signature = signer.sign(body);
    let mut headers = vec![
        ("Github-Public-Key-Identifier", signer.id.as_str()),
        ("Github-Public-Key-Signature", signature.as_str()),
    ];
    headers.extend_from_slice(extra);
    common::server::post(&server.url(PATH), &headers, body)
}

fn tally(seen: &[(Seen, Duration)]) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for (s, _) in seen {
        let key = match s {
            Seen::Answer(status, _) => status.to_string(),
            other => format!("{other:?}"),
        };
        *counts.entry(key).or_insert(0) += 1;
    }
    counts
}

#[test]
fn partner_bodies_without_signature_headers_are_refused_before_they_are_read() {
    raise_own_descriptor_limit();
    let db = TestDb::sqlite();
    let signer = Signer::new();
    let (server, _keys) = serve_trusting(db.url(), &signer, &[]);
    let idle = server.rss();
    // 1,000 clients declare a 1 MiB body and send all of it but one byte.
    let seen = slow_bodies(
        &server,
        1000,
        partner_head("", MIB),
        MIB - 1,
        Duration::from_secs(30),
    );
    let peak = server.peak_rss();
    let counts = tally(&seen);
    assert!(
        peak < 150 * MIB,
        "peak RSS {} MiB (idle {} MiB); answers {counts:?}",
        peak / MIB,
        idle / MIB
    );
    // Each is answered (refused: no signature) or closed, never left open.
    for (s, took) in &seen {
        assert!(
            matches!(s, Seen::Answer(400 | 401, _) | Seen::Closed),
            "{s:?} after {took:?}; all: {counts:?}"
        );
    }
    // Missing signature headers are a bad request.
    assert!(
        counts.get("400").copied().unwrap_or(0) >= 900,
        "most are answered 400: {counts:?}"
    );
    eprintln!(
        "peak RSS {} MiB, idle {} MiB: {counts:?}",
        peak / MIB,
        idle / MIB
    );
    assert_eq!(get(&server.url("/healthz"), &[]).status, 200);
}

#[test]
fn signed_looking_bodies_share_a_capped_buffer_and_get_503_past_it() {
    raise_own_descriptor_limit();
    let db = TestDb::sqlite();
    let signer = Signer::new();
    let (server, _keys) = serve_trusting(
        db.url(),
        &signer,
        &[
            "--partner-body-budget",
            "8MiB",
            "--body-timeout",
            "2s",
            "--trusted-proxy",
            "127.0.0.1/32",
        ],
    );
    // The key identifier is GitHub's, public; the signature is well formed.
    // Such a request passes the header checks and its body is read, so what
    // all of them may hold together is what bounds the memory. Each comes
    // from an address of its own (behind the proxy), so no share per
    // address stops them first.
    let heads = (0..300)
        .map(|i| {
            let from = format!("X-Forwarded-For: 198.51.{}.{}\r\n", i / 200, i % 200 + 1);
            partner_head(&format!("{}{from}", signed_looking(&signer)), MIB)
        })
        .collect();
    let seen = slow_bodies_with(&server, heads, MIB - 1, Duration::from_secs(20));
    let peak = server.peak_rss();
    let counts = tally(&seen);
    eprintln!("peak RSS {} MiB: {counts:?}", peak / MIB);
    assert!(peak < 150 * MIB, "peak RSS {} MiB; {counts:?}", peak / MIB);
    let refused: Vec<_> = seen
        .iter()
        .filter(|(s, _)| matches!(s, Seen::Answer(503, _)))
        .collect();
    assert!(refused.len() >= 250, "{counts:?}");
    for (s, _) in &refused {
        assert!(
            matches!(s, Seen::Answer(503, Some(r)) if r.parse::<u64>().is_ok()),
            "a 503 says when to retry: {s:?}"
        );
    }
    // The ones admitted never finish their body: the body deadline answers.
    for (s, took) in &seen {
        match s {
            Seen::Answer(503, _) => {}
            Seen::Answer(408, _) | Seen::Closed => {
                assert!(*took < Duration::from_secs(10), "{s:?} after {took:?}")
            }
            other => panic!("{other:?} after {took:?}; all: {counts:?}"),
        }
    }
    assert!(counts.contains_key("408"), "{counts:?}");
    // Once they are gone, a real report is read again.
    let reply = real_report(&server, &signer, &[]);
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[test]
fn a_body_sent_too_slowly_gets_408_and_one_declared_too_big_413_unread() {
    let db = TestDb::sqlite();
    let signer = Signer::new();
    let (server, _keys) = serve_trusting(db.url(), &signer, &["--body-timeout", "1s"]);
    let seen = slow_bodies(
        &server,
        1,
        partner_head(&signed_looking(&signer), 100),
        10,
        Duration::from_secs(10),
    );
    assert!(
        matches!(seen[0], (Seen::Answer(408, _), t) if t < Duration::from_secs(5)),
        "{seen:?}"
    );
    let seen = slow_bodies(
        &server,
        1,
        partner_head(&signed_looking(&signer), 64 * MIB),
        0,
        Duration::from_secs(10),
    );
    assert!(matches!(seen[0].0, Seen::Answer(413, _)), "{seen:?}");
}

/// Opens `n` connections that send half a request line and then nothing;
/// each task reports how long the server kept it open (`None`: still open
/// after `limit`, or never opened).
fn half_requests(
    addr: &str,
    n: usize,
    limit: Duration,
) -> tokio::task::JoinHandle<Vec<Option<Duration>>> {
    let addr = addr.to_string();
    let handle = tokio::runtime::Handle::current();
    handle.spawn(async move {
        let mut tasks = Vec::new();
        for _ in 0..n {
            let addr = addr.clone();
            tasks.push(tokio::spawn(async move {
                let start = Instant::now();
                let mut stream = tokio::time::timeout(limit, TcpStream::connect(&addr))
                    .await
                    .ok()?
                    .ok()?;
                stream.write_all(b"GET /healthz HT").await.ok()?;
                let mut buf = [0u8; 64];
                loop {
                    let left = limit.checked_sub(start.elapsed())?;
                    match tokio::time::timeout(left, stream.read(&mut buf)).await {
                        Err(_) => return None,
                        Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
                        Ok(Ok(_)) => {}
                    }
                }
            }));
            // A flood, not a single burst the backlog swallows.
            if tasks.len() % 100 == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    })
}

fn metric(server: &Server, name: &str) -> f64 {
    let text = get(&server.admin_url("/metrics"), &[]).body;
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn half_sent_requests_are_closed_and_healthz_answers_at_the_descriptor_limit() {
    raise_own_descriptor_limit();
    let db = TestDb::sqlite();
    // The process may hold 1,024 descriptors; 3,000 clients each send half
    // a request line and stop. Default flags.
    let server = Server::start_with_nofile(db.url(), &[], 1024);
    let rt = runtime();
    let _guard = rt.enter();
    let flood = half_requests(&addr(&server), 3000, Duration::from_secs(45));
    std::thread::sleep(Duration::from_secs(2));
    let probe = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(2)))
        .build();
    let probe: ureq::Agent = probe.into();
    let mut took = Vec::new();
    for _ in 0..40 {
        let start = Instant::now();
        let status = probe
            .get(&server.url("/healthz"))
            .call()
            .map(|r| r.status().as_u16());
        took.push(start.elapsed());
        assert!(
            matches!(status, Ok(200)),
            "/healthz under the flood: {status:?} after {:?}",
            start.elapsed()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let closed = rt.block_on(flood).unwrap();
    let opened = closed.len();
    let closed_in_time = closed.iter().filter(|c| c.is_some()).count();
    assert!(
        closed_in_time * 100 >= opened * 95,
        "{closed_in_time} of {opened} closed within 45 s"
    );
    assert!(
        metric(&server, "keywarden_connections_shed_total") > 0.0,
        "shedding is counted"
    );
    // Shed connections close before new ones pile up: the process never
    // ran out of descriptors.
    assert_eq!(metric(&server, "keywarden_accept_errors_total"), 0.0);
    assert!(
        server.log_text().contains("connections shed"),
        "and logged: {}",
        server.log_text()
    );
    took.sort();
    eprintln!("healthz under the flood: max {:?}", took.last());
}

#[test]
fn idle_and_half_sent_connections_are_closed_at_their_timeouts() {
    raise_own_descriptor_limit();
    let db = TestDb::sqlite();
    let server = Server::start(
        db.url(),
        &["--header-read-timeout", "1s", "--idle-timeout", "2s"],
    );
    let rt = runtime();
    let _guard = rt.enter();
    let flood = half_requests(&addr(&server), 200, Duration::from_secs(20));
    // A keep-alive connection that asked once and then says nothing.
    let idle = rt.block_on(async {
        let mut stream = TcpStream::connect(addr(&server)).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let start = Instant::now();
        let mut buf = [0u8; 1024];
        let mut got = Vec::new();
        loop {
            match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break Some((got, start.elapsed())),
                Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
                Err(_) => break None,
            }
        }
    });
    let (answer, idle_for) = idle.expect("the idle connection is closed");
    assert!(answer.starts_with(b"HTTP/1.1 200"));
    assert!(
        idle_for >= Duration::from_millis(1500) && idle_for < Duration::from_secs(5),
        "closed after {idle_for:?} idle"
    );
    let closed = rt.block_on(flood).unwrap();
    for c in &closed {
        let c = c.expect("every half-sent request is closed");
        assert!(c < Duration::from_secs(5), "closed after {c:?}");
    }
    assert_eq!(
        metric(
            &server,
            "keywarden_connections_closed_total{reason=\"header_timeout\"}"
        ),
        200.0
    );
    assert_eq!(
        metric(
            &server,
            "keywarden_connections_closed_total{reason=\"idle_timeout\"}"
        ),
        1.0
    );
}

#[test]
fn a_key_identifier_cut_inside_a_character_is_refused_not_a_panic() {
    let db = TestDb::sqlite();
    let signer = Signer::new();
    let (server, _keys) = serve_trusting(db.url(), &signer, &[]);
    let body = b"[]";
    // 'é' spans bytes 11 and 12 of the identifier.
    for id in [
        "abcdefghijk\u{e9}xyz",
        "\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}",
    ] {
        let head = format!(
            "POST {PATH} HTTP/1.1\r\nHost: x\r\nGithub-Public-Key-Identifier: {id}\r\n\
             Github-Public-Key-Signature: {}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n",
            signer.sign(body)
        );
        let seen = runtime().block_on(async {
            let mut stream = TcpStream::connect(addr(&server)).await.unwrap();
            stream.write_all(head.as_bytes()).await.unwrap();
            stream.write_all(body).await.unwrap();
            read_answer(&mut stream, Duration::from_secs(10)).await
        });
        assert_eq!(seen, Seen::Answer(401, None), "identifier {id:?}");
    }
    assert_eq!(get(&server.url("/healthz"), &[]).status, 200);
    assert!(
        !server.log_text().contains("panicked"),
        "{}",
        server.log_text()
    );
}

#[test]
fn metrics_and_readiness_answer_only_on_the_admin_listener() {
    let db = TestDb::sqlite();
    let server = Server::start(db.url(), &[]);
    for path in ["/metrics", "/readyz"] {
        assert_eq!(get(&server.url(path), &[]).status, 404, "{path} in public");
    }
    assert_eq!(get(&server.url("/healthz"), &[]).status, 200);
    let admin = server.admin.as_deref().unwrap();
    assert!(admin.starts_with("http://127.0.0.1:"), "{admin}");
    assert_ne!(admin, server.base);
    let metrics = get(&server.admin_url("/metrics"), &[]);
    assert_eq!(metrics.status, 200);
    assert!(metrics.body.contains("keywarden_connections_open"));
    assert!(matches!(
        get(&server.admin_url("/readyz"), &[]).status,
        200 | 503
    ));
    assert_eq!(get(&server.admin_url("/healthz"), &[]).status, 200);
    // The key check and the partner route are not on the admin listener.
    assert_eq!(get(&server.admin_url("/api/v1/key"), &[]).status, 404);
}

#[test]
fn one_slow_client_cannot_take_the_body_budget_from_github() {
    raise_own_descriptor_limit();
    let db = TestDb::sqlite();
    let signer = Signer::new();
    // Behind a proxy on loopback: X-Forwarded-For names each client.
    let (server, _keys) = serve_trusting(
        db.url(),
        &signer,
        &[
            "--trusted-proxy",
            "127.0.0.1/32",
            "--partner-body-budget",
            "16MiB",
            "--body-timeout",
            "4s",
        ],
    );
    let attacker = format!(
        "{}X-Forwarded-For: 198.51.100.9\r\n",
        signed_looking(&signer)
    );
    let head = partner_head(&attacker, MIB);
    let flood = std::thread::scope(|scope| {
        let flood =
            scope.spawn(|| slow_bodies(&server, 60, head, MIB - 1, Duration::from_secs(20)));
        std::thread::sleep(Duration::from_secs(1));
        let reply = real_report(&server, &signer, &[("X-Forwarded-For", "192.30.252.1")]);
        assert_eq!(
            reply.status, 200,
            "GitHub's report during the flood: {}",
            reply.body
        );
        flood.join().unwrap()
    });
    let counts = tally(&flood);
    // One client holds at most an eighth of the budget (2 MiB): its bodies
    // are refused as soon as they would pass it, and those it holds are
    // cut off at the body deadline.
    assert!(counts.get("503").copied().unwrap_or(0) >= 50, "{counts:?}");
    for (s, _) in &flood {
        assert!(matches!(s, Seen::Answer(503 | 408, _)), "{s:?}: {counts:?}");
    }
}

#[test]
fn declared_bodies_that_never_come_hold_no_budget_and_slow_ones_are_cut_off() {
    raise_own_descriptor_limit();
    let db = TestDb::sqlite();
    let signer = Signer::new();
    let (server, _keys) = serve_trusting(db.url(), &signer, &["--trusted-proxy", "127.0.0.1/32"]);
    // 16 addresses x 4 connections declare 1 MiB each (64 MiB, twice the
    // budget) and send nothing.
    let heads = (0..64)
        .map(|i| {
            let from = format!("X-Forwarded-For: 203.0.113.{}\r\n", i % 16 + 1);
            partner_head(&format!("{}{from}", signed_looking(&signer)), MIB)
        })
        .collect();
    std::thread::scope(|scope| {
        let hold = scope.spawn(|| slow_bodies_with(&server, heads, 0, Duration::from_secs(20)));
        std::thread::sleep(Duration::from_millis(500));
        for _ in 0..5 {
            let reply = real_report(&server, &signer, &[("X-Forwarded-For", "192.30.252.1")]);
            assert_eq!(reply.status, 200, "GitHub's report: {}", reply.body);
        }
        // They are answered 408 once the grace for a body to start is over.
        for (s, took) in hold.join().unwrap() {
            assert_eq!(s, Seen::Answer(408, None));
            assert!(took < Duration::from_secs(5), "after {took:?}");
        }
    });
    // A body trickled at 32 KiB/s is cut off long before --body-timeout.
    let seen = runtime().block_on(async {
        let mut stream = TcpStream::connect(addr(&server)).await.unwrap();
        let head = partner_head(&signed_looking(&signer), MIB);
        stream.write_all(head.as_bytes()).await.unwrap();
        let start = Instant::now();
        let chunk = [b' '; 1024];
        while start.elapsed() < Duration::from_secs(9) {
            if stream.write_all(&chunk).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
            let mut probe = [0u8; 1];
            if let Ok(Ok(_)) =
                tokio::time::timeout(Duration::from_millis(1), stream.peek(&mut probe)).await
            {
                break;
            }
        }
        let seen = read_answer(&mut stream, Duration::from_secs(10)).await;
        (seen, start.elapsed())
    });
    assert_eq!(seen.0, Seen::Answer(408, None), "{seen:?}");
    assert!(seen.1 < Duration::from_secs(5), "{seen:?}");
}

#[test]
fn a_client_that_does_not_read_its_answers_is_closed_at_the_request_timeout() {
    let db = TestDb::sqlite();
    let server = Server::start(
        db.url(),
        &[
            "--request-timeout",
            "3s",
            "--body-timeout",
            "1s",
            "--store-timeout",
            "1s",
        ],
    );
    let closed_after = runtime().block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut stream = socket
            .connect(addr(&server).parse().unwrap())
            .await
            .unwrap();
        // Pipelined requests, never reading: the server's answers fill the
        // socket buffers and its writes stall.
        let request = b"GET /api/v1/key HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nope\r\n\r\n";
        let many = request.repeat(1000);
        let start = Instant::now();
        while let Ok(Ok(())) =
            tokio::time::timeout(Duration::from_secs(1), stream.write_all(&many)).await
        {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "writes never stalled"
            );
        }
        // Past the request timeout, still without reading.
        tokio::time::sleep(Duration::from_secs(6)).await;
        // Now read: what was written before the close, then the close. A
        // connection still open would be answered on and on instead, and
        // then sit idle past this test's patience.
        let start = Instant::now();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match tokio::time::timeout(Duration::from_secs(20), stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break Some(start.elapsed()),
                Ok(Ok(_)) => {}
                Err(_) => break None,
            }
        }
    });
    let after = closed_after.expect("the connection is closed");
    assert!(
        after < Duration::from_secs(5),
        "the close came {after:?} after reading"
    );
    assert!(
        metric(
            &server,
            "keywarden_connections_closed_total{reason=\"request_timeout\"}"
        ) >= 1.0,
        "counted"
    );
    let out = common::keywarden()
        .args(["serve", "--listen", "127.0.0.1:0", "--admin-listen", "none"])
        .args(["--database-url", db.url(), "--request-timeout", "5s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("must be longer than --body-timeout"));
}
