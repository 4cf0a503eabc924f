//! Rate limits as a client sees them: a key gets at most its type's
//! per-minute limit in any 60-second window, however many replicas share
//! the store, and every 429 says truly when to come back.

mod common;

use common::db::TestDb;
use common::server::{Server, get, key_info};
use common::{create_key, eventually};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One answer as the client saw it: when it was sent and received (seconds
/// since the test's start), its status and Retry-After.
#[derive(Debug, Clone)]
struct Seen {
    sent: f64,
    received: f64,
    status: u16,
    retry_after: Option<u64>,
}

/// Sends `GET /api/v1/key` with `key` from `threads` threads, round-robin
/// over `servers`, for `run` from `start`.
fn hammer(
    servers: &[Server],
    key: &str,
    threads: usize,
    run: Duration,
    start: Instant,
) -> Vec<Seen> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    std::thread::scope(|scope| {
        for t in 0..threads {
            let seen = seen.clone();
            scope.spawn(move || {
                let mut n = t;
                let mut mine = Vec::new();
                while start.elapsed() < run {
                    let server = &servers[n % servers.len()];
                    n += 1;
                    let sent = start.elapsed().as_secs_f64();
                    let reply = key_info(server, key);
                    mine.push(Seen {
                        sent,
                        received: start.elapsed().as_secs_f64(),
                        status: reply.status,
                        retry_after: reply
                            .retry_after
                            .map(|r| r.parse().expect("Retry-After is whole seconds")),
                    });
                }
                seen.lock().unwrap().extend(mine);
            });
        }
    });
    let mut all = Arc::try_unwrap(seen).unwrap().into_inner().unwrap();
    all.sort_by(|a, b| a.sent.total_cmp(&b.sent));
    all
}

/// The most 200s whose requests were sent within any 60 seconds.
fn most_in_any_minute(seen: &[Seen]) -> usize {
    let ok: Vec<f64> = seen
        .iter()
        .filter(|s| s.status == 200)
        .map(|s| s.sent)
        .collect();
    (0..ok.len())
        .map(|i| ok[i..].iter().take_while(|t| **t < ok[i] + 60.0).count())
        .max()
        .unwrap_or(0)
}

/// Every answer is a 200 or a 429, and every 429 carries a Retry-After
/// that is neither early (a client that obeys it is not refused again
/// for the same exhausted window) nor much too late.
fn check_retry_after(seen: &[Seen]) {
    let statuses: Vec<u16> = seen
        .iter()
        .map(|s| s.status)
        .filter(|s| *s != 200 && *s != 429)
        .collect();
    assert!(statuses.is_empty(), "other answers: {statuses:?}");
    for refused in seen.iter().filter(|s| s.status == 429) {
        let retry = refused.retry_after.expect("every 429 has Retry-After");
        assert!((1..=61).contains(&retry), "Retry-After {retry}");
        let back_at = refused.received + retry as f64;
        // Tokens leased to other replicas before the refusal may still be
        // spent for up to a second after it: those are not new room.
        let fresh = refused.received + 1.5;
        // Not early: the window had room again within a second of the time
        // named. Room that opens within a second of the refusal (a
        // Retry-After of 1 or 2) is taken at once by the other clients, so
        // for those the room is looked for from a second before that time.
        let looked_from = fresh.min(back_at - 1.0);
        if let Some(next_ok) = first_ok_after(seen, looked_from) {
            assert!(
                next_ok.sent <= back_at + 1.0,
                "a 429 at {:.2}s said retry after {retry}s, but requests were admitted again only from {:.2}s on (200s sent from {looked_from:.2}s: {:?})",
                refused.received,
                next_ok.sent,
                oks_between(seen, looked_from, next_ok.sent + 0.5)
            );
        }
        // Not late: nothing was admitted well before that time.
        if let Some(next_ok) = first_ok_after(seen, fresh) {
            assert!(
                back_at <= next_ok.sent + 2.5,
                "a 429 at {:.2}s said retry after {retry}s; the window had room at {:.2}s",
                refused.received,
                next_ok.sent
            );
        }
    }
}

/// The first 200 sent after `t`.
fn first_ok_after(seen: &[Seen], t: f64) -> Option<&Seen> {
    seen.iter().find(|s| s.status == 200 && s.sent > t)
}

/// When the 200s sent between `from` and `to` were sent, for a failure's
/// message.
fn oks_between(seen: &[Seen], from: f64, to: f64) -> Vec<String> {
    seen.iter()
        .filter(|s| s.status == 200 && s.sent > from && s.sent <= to)
        .map(|s| format!("{:.2}", s.sent))
        .take(20)
        .collect()
}

/// A new read-only key (120 requests a minute) in `db`.
fn read_only_key(db: &TestDb) -> String {
    let args = [
        "--owner",
        "a@example.com",
        "--name",
        "ro",
        "--type",
        "read-only",
    ];
    create_key(db.url(), &args).0
}

fn metric(server: &Server, name: &str) -> f64 {
    let text = get(&server.admin_url("/metrics"), &[]).body;
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn three_replicas_on_one_postgres_admit_a_keys_limit_once_per_minute() {
    let db = TestDb::postgres().await;
    // 600 a minute, hammered; and 120 a minute, used steadily just under it.
    let (hammered, _) = create_key(db.url(), &["--owner", "a@example.com", "--name", "hot"]);
    let (steady, _) = create_key(
        db.url(),
        &[
            "--owner",
            "b@example.com",
            "--name",
            "steady",
            "--type",
            "read-only",
        ],
    );
    let servers: Vec<Server> = (0..3).map(|_| Server::start(db.url(), &[])).collect();
    let start = Instant::now();
    // 64 s: a full window, the refill at 61 s, and the first requests after.
    let run = Duration::from_secs(64);
    let (hot, calm) = tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            let calm = scope.spawn(|| {
                // 1.8 a second through the three replicas in turn: 108 a
                // minute, under the type's 120.
                let mut seen = Vec::new();
                let mut n = 0;
                while start.elapsed() < run {
                    let sent = start.elapsed().as_secs_f64();
                    let reply = key_info(&servers[n % 3], &steady);
                    n += 1;
                    seen.push((sent, reply.status));
                    std::thread::sleep(Duration::from_millis(555));
                }
                seen
            });
            let hot = hammer(&servers, &hammered, 6, run, start);
            (hot, calm.join().unwrap())
        })
    });
    let ok_first_minute = hot
        .iter()
        .filter(|s| s.status == 200 && s.sent < 60.0)
        .count();
    assert!(
        (570..=630).contains(&ok_first_minute),
        "{ok_first_minute} of {} requests admitted in the first 60 s through 3 replicas; the limit is 600",
        hot.iter().filter(|s| s.sent < 60.0).count()
    );
    let most = most_in_any_minute(&hot);
    assert!(most <= 630, "{most} admitted within one 60 s window");
    assert!(
        hot.iter().any(|s| s.status == 200 && s.sent > 61.0),
        "the window never had room again after a minute"
    );
    check_retry_after(&hot);
    let refused_calm: Vec<_> = calm.iter().filter(|(_, status)| *status != 200).collect();
    assert!(
        refused_calm.is_empty(),
        "a client under its limit was refused: {refused_calm:?} of {}",
        calm.len()
    );
    assert!(calm.len() >= 100, "only {} steady requests", calm.len());
}

#[test]
fn one_replica_on_sqlite_admits_the_limit_and_no_more() {
    let db = TestDb::sqlite();
    let key = read_only_key(&db);
    let server = Server::start(db.url(), &[]);
    let start = Instant::now();
    let seen = hammer(
        std::slice::from_ref(&server),
        &key,
        4,
        Duration::from_secs(6),
        start,
    );
    let ok = seen.iter().filter(|s| s.status == 200).count();
    // In-process counting is exact: 120, not 120 plus a refill.
    assert_eq!(ok, 120, "{ok} admitted in 6 s; the limit is 120 a minute");
    for refused in seen.iter().filter(|s| s.status == 429) {
        let retry = refused.retry_after.expect("Retry-After");
        let first_ok = seen.iter().find(|s| s.status == 200).unwrap().sent;
        // Room again when the first second's requests leave the window.
        let due = first_ok + 61.0 - refused.received;
        assert!(
            (retry as f64) >= due - 1.0 && (retry as f64) <= due + 1.5,
            "Retry-After {retry} at {:.2}s; room again in {due:.2}s",
            refused.received
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_that_cannot_reach_the_shared_counter_limits_on_its_own() {
    let db = TestDb::postgres().await;
    let key = read_only_key(&db);
    let server = Server::start(db.url(), &[]);
    // The key table answers, the shared counter does not.
    db.exec("DROP FUNCTION keywarden_rate_sync").await;
    let seen = tokio::task::block_in_place(|| {
        hammer(
            std::slice::from_ref(&server),
            &key,
            2,
            Duration::from_secs(3),
            Instant::now(),
        )
    });
    let ok = seen.iter().filter(|s| s.status == 200).count();
    assert_eq!(ok, 120, "the replica's own limit applies: {ok} admitted");
    assert!(seen.iter().any(|s| s.status == 429));
    tokio::task::block_in_place(|| {
        eventually("the fallback is counted", Duration::from_secs(5), || {
            metric(&server, "keywarden_rate_limit_fallbacks_total") >= 1.0
        });
        assert!(
            server.log_text().contains("shared rate counter"),
            "{}",
            server.log_text()
        );
    });
}

#[test]
fn rate_limits_can_be_turned_off_and_shared_needs_postgres() {
    let db = TestDb::sqlite();
    let key = read_only_key(&db);
    let server = Server::start(db.url(), &["--rate-limits", "off"]);
    for _ in 0..130 {
        assert_eq!(key_info(&server, &key).status, 200);
    }
    let out = common::keywarden()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--rate-limits",
            "shared",
        ])
        .args(["--database-url", db.url()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--rate-limits shared") && stderr.contains("PostgreSQL"),
        "{stderr}"
    );
}
