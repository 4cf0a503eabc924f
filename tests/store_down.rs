//! The key store goes away mid-run: a private PostgreSQL server (never the
//! machine's shared one) is stopped as a crash would stop it while partner
//! reports are being answered. Reports then get 503 (GitHub retries), no
//! revocation is half-written, and once the store is back every retried
//! report succeeds and each key is revoked, recorded and emailed once.

mod common;

use common::github::{Signer, serve_trusting};
use common::keywarden;
use common::private_pg::PrivatePostgres;
use common::server::{Reply, Server, get, key_info, post};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const KEYS: usize = 60;
const THREADS: usize = 4;

fn report(token: &str) -> String {
    format!(
        r#"[{{"token":"{token}","type":"openrouter_api_key","url":"https://github.com/o/r/blob/main/.env","source":"content"}}]"#
    )
}

/// One number from the private server (queried directly, not through
/// keywarden; never the shared test server).
fn count(url: &str, sql: &str) -> i64 {
    use sqlx::{Connection, Row};
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query(sql)
            .fetch_one(&mut c)
            .await
            .unwrap()
            .get::<i64, _>(0)
    })
}

/// Asserts that revocations, revoked incidents and outbox rows each
/// number `n`: a revocation is recorded whole or not at all.
fn assert_revoked_rows(url: &str, n: i64, when: &str) {
    for table in ["revocations", "incidents WHERE kind = 'revoked'", "outbox"] {
        assert_eq!(
            count(url, &format!("SELECT COUNT(*) FROM {table}")),
            n,
            "{table} {when}"
        );
    }
}

/// `n` fresh live keys, imported into the store at `url` in one go.
fn import_keys(url: &str, n: usize) -> Vec<String> {
    let keys: Vec<String> = (0..n).map(|_| common::gen_key()).collect();
    let inventory = tempfile::NamedTempFile::new().unwrap();
    let mut csv = String::from("key,name,owner_email\n");
    for (i, k) in keys.iter().enumerate() {
        csv.push_str(&format!("{k},key-{i},owner{i}@example.com\n"));
    }
    std::fs::write(inventory.path(), csv).unwrap();
    keywarden()
        .args(["keys", "import", "--database-url", url])
        .arg(inventory.path())
        .assert()
        .success();
    keys
}

/// A one-token partner report of `token`, signed as GitHub would.
fn send_report(server: &Server, signer: &Signer, token: &str) -> Reply {
    let body = report(token);
    let signature = signer.sign(body.as_bytes());
    post(
        &server.url("/github/secret-scanning"),
        &[
            ("Github-Public-Key-Identifier", &signer.id),
            ("Github-Public-Key-Signature", &signature),
        ],
        body.as_bytes(),
    )
}

#[test]
fn reports_get_503_while_the_store_is_down_and_take_effect_once_when_it_is_back() {
    let mut pg = PrivatePostgres::start();
    let db = pg.url();
    let keys = import_keys(&pg.url(), KEYS);
    let signer = Signer::new();
    let (server, _github_keys) = serve_trusting(&pg.url(), &signer, &["--mail-poll", "200ms"]);
    assert_eq!(key_info(&server, &keys[0]).status, 200);
    let send = |token: &str| send_report(&server, &signer, token);

    // Reports from 4 threads; the store crashes after about a third, while
    // reports are in flight.
    let crashed = AtomicBool::new(false);
    let sent = AtomicUsize::new(0);
    let statuses: Vec<(usize, u16, Option<String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (keys, send, crashed, sent) = (&keys, &send, &crashed, &sent);
                s.spawn(move || {
                    let mut out = Vec::new();
                    for i in (t..KEYS).step_by(THREADS) {
                        if sent.load(Ordering::SeqCst) >= KEYS / 3 {
                            // The rest surely meets a store that is down.
                            while !crashed.load(Ordering::SeqCst) {
                                std::thread::sleep(Duration::from_millis(2));
                            }
                        }
                        let reply = send(&keys[i]);
                        sent.fetch_add(1, Ordering::SeqCst);
                        out.push((i, reply.status, reply.retry_after));
                    }
                    out
                })
            })
            .collect();
        while sent.load(Ordering::SeqCst) < KEYS / 3 - THREADS {
            std::thread::sleep(Duration::from_millis(1));
        }
        pg.crash();
        crashed.store(true, Ordering::SeqCst);
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let answered: Vec<usize> = statuses
        .iter()
        .filter(|s| s.1 == 200)
        .map(|s| s.0)
        .collect();
    let unavailable: Vec<usize> = statuses
        .iter()
        .filter(|s| s.1 == 503)
        .map(|s| s.0)
        .collect();
    let other: Vec<_> = statuses
        .iter()
        .filter(|s| s.1 != 200 && s.1 != 503)
        .collect();
    assert!(other.is_empty(), "neither 200 nor 503: {other:?}");
    assert!(!answered.is_empty() && !unavailable.is_empty());
    assert!(
        statuses
            .iter()
            .filter(|s| s.1 == 503)
            .all(|s| s.2.is_some()),
        "a 503 tells GitHub when to retry"
    );

    // While down: the key check and readiness say so too, quickly enough
    // for GitHub's delivery timeout.
    let started = Instant::now();
    assert_eq!(key_info(&server, &keys[KEYS - 1]).status, 503);
    assert_eq!(send(&keys[KEYS - 1]).status, 503);
    let down_answer = started.elapsed() / 2;
    assert!(
        down_answer < Duration::from_secs(5),
        "{down_answer:?} to say 503"
    );
    let ready = get(&server.admin_url("/readyz"), &[]);
    assert_eq!(ready.status, 503);
    assert_ne!(ready.json()["store"], "ok");

    pg.resume();
    // Nothing half-written: a key is revoked exactly when its revocation,
    // incident and email are recorded, and each report answered 200 did
    // all. (A report cut off by the crash after its commit may have taken
    // effect though answered 503; GitHub's retry then finds it done.)
    let revoked = count(
        &db,
        "SELECT COUNT(*) FROM keys WHERE revoked_at IS NOT NULL",
    );
    assert_revoked_rows(&db, revoked, "after the crash");
    assert!(revoked >= answered.len() as i64);
    for &i in &answered {
        assert_eq!(key_info(&server, &keys[i]).status, 401, "answered key {i}");
    }

    // GitHub retries every report that got 503, then redelivers them all.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut pending = unavailable.clone();
    while !pending.is_empty() {
        assert!(Instant::now() < deadline, "still failing: {pending:?}");
        pending.retain(|&i| send(&keys[i]).status != 200);
    }
    for k in &keys {
        let reply = send(k);
        assert_eq!(reply.status, 200);
        assert_eq!(reply.json()[0]["label"], "true_positive");
        assert_eq!(key_info(&server, k).status, 401);
    }
    assert_revoked_rows(&db, KEYS as i64, "one row per key");
    assert_eq!(
        count(&db, "SELECT COUNT(DISTINCT key_id) FROM revocations"),
        KEYS as i64
    );
    // Every owner emailed once, by the worker that lived through the crash.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let sent = count(&db, "SELECT COUNT(*) FROM outbox WHERE state = 'sent'");
        if sent == KEYS as i64 {
            break;
        }
        assert!(Instant::now() < deadline, "{sent} of {KEYS} emails sent");
        std::thread::sleep(Duration::from_millis(200));
    }
    let emails = std::fs::read_dir(server.mail_dir.path()).unwrap().count();
    assert_eq!(emails, KEYS, "one email per key");
    eprintln!(
        "{} reports answered before the crash, {} got 503; a request while down took {:?}",
        answered.len(),
        unavailable.len(),
        down_answer
    );
}

/// Holds `LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE` on the store at
/// `url` (as a migration or an operator's open transaction might) until the
/// returned sender is dropped, or for 20 s at most.
fn lock_table(url: &str, table: &'static str) -> std::sync::mpsc::Sender<()> {
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (locked, is_locked) = std::sync::mpsc::channel();
    let url = url.to_string();
    std::thread::spawn(move || {
        use sqlx::Connection;
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
            let mut tx = c.begin().await.unwrap();
            sqlx::query(&format!("LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
                .execute(&mut *tx)
                .await
                .unwrap();
            locked.send(()).unwrap();
            let _ = released.recv_timeout(Duration::from_secs(20));
            tx.rollback().await.unwrap();
        });
    });
    is_locked.recv().unwrap();
    release
}

/// Runs `f`, returning its reply and how long it took.
fn timed(f: impl FnOnce() -> Reply) -> (Reply, Duration) {
    let started = Instant::now();
    let reply = f();
    (reply, started.elapsed())
}

#[test]
fn a_store_that_stops_answering_gets_503_within_the_store_timeout() {
    // Two ways a store accepts a request and then never answers: a lock
    // the query waits on, and every PostgreSQL process stopped (a
    // partition, a hung host). Requests must not wait on it longer than
    // --store-timeout (1 s here). Each one cut short is counted, and the
    // count must come out exact: a 503 from anything else (the pool's 3 s
    // acquire timeout) would leave it short.
    let mut pg = PrivatePostgres::start();
    let db = pg.url();
    let keys = import_keys(&db, 4);
    let signer = Signer::new();
    let (server, _github_keys) = serve_trusting(&db, &signer, &["--store-timeout", "1s"]);
    assert_eq!(key_info(&server, &keys[0]).status, 200);
    let bound = Duration::from_secs(5);
    let unavailable = |what: &str, (reply, took): (Reply, Duration)| {
        assert_eq!(reply.status, 503, "{what}: {}", reply.body);
        assert!(reply.retry_after.is_some(), "{what}: no Retry-After");
        assert!(took < bound, "{what} answered after {took:?}");
    };
    let store_timeouts = || -> u64 {
        get(&server.admin_url("/metrics"), &[])
            .body
            .lines()
            .find_map(|l| l.strip_prefix("keywarden_store_timeouts_total "))
            .expect("the store timeout counter is exported")
            .parse()
            .unwrap()
    };
    let back = |key: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while key_info(&server, key).status != 200 {
            assert!(Instant::now() < deadline, "the store never came back");
            std::thread::sleep(Duration::from_millis(100));
        }
    };

    // 1. Locks: the connection is healthy, the query waits. With `keys`
    // locked the key check waits; with `incidents` locked a report gets
    // through BEGIN and the key's UPDATE and waits mid-transaction.
    let release = lock_table(&db, "keys");
    unavailable(
        "key check under a lock",
        timed(|| key_info(&server, &keys[1])),
    );
    drop(release);
    back(&keys[1]);
    assert_eq!(store_timeouts(), 1);
    let release = lock_table(&db, "incidents");
    unavailable(
        "report under a lock",
        timed(|| send_report(&server, &signer, &keys[2])),
    );
    assert_eq!(store_timeouts(), 2);
    drop(release);
    // The report cut short is not cancelled: it finishes once the lock
    // goes, whole (revocation, incident and email together).
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(&db, "SELECT COUNT(*) FROM revocations") == 0 {
        assert!(Instant::now() < deadline, "the report never took effect");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(key_info(&server, &keys[2]).status, 401);
    assert_revoked_rows(&db, 1, "after the lock");

    // 2. Every server process stopped: pooled connections hang mid-query
    // and new ones are accepted by the kernel but never answered.
    pg.stall();
    unavailable("stalled key check", timed(|| key_info(&server, &keys[1])));
    unavailable(
        "stalled report",
        timed(|| send_report(&server, &signer, &keys[3])),
    );
    let (ready, took) = timed(|| get(&server.admin_url("/readyz"), &[]));
    assert_eq!(ready.status, 503);
    assert_eq!(
        ready.json()["store"],
        "the key store did not answer within 1s"
    );
    assert!(took < bound, "readiness answered after {took:?}");
    // More requests at once than the pool has connections (16): none
    // waits for another.
    let answers: Vec<(Reply, Duration)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..24)
            .map(|i| {
                let (server, keys) = (&server, &keys);
                s.spawn(move || timed(|| key_info(server, &keys[i % 4])))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for answer in answers {
        unavailable("concurrent stalled key check", answer);
    }
    // 2 under locks, 27 stalled, and /metrics' own two outbox gauges.
    let (timeouts, took) = {
        let started = Instant::now();
        (store_timeouts(), started.elapsed())
    };
    assert_eq!(timeouts, 31);
    assert!(took < bound, "/metrics answered after {took:?}");

    // The store wakes: requests succeed again without a restart, and the
    // report GitHub retries takes effect once.
    pg.wake();
    back(&keys[1]);
    for k in [&keys[2], &keys[3]] {
        let retried = send_report(&server, &signer, k);
        assert_eq!(retried.status, 200);
        assert_eq!(retried.json()[0]["label"], "true_positive");
        assert_eq!(key_info(&server, k).status, 401);
    }
    for k in [&keys[0], &keys[1]] {
        assert_eq!(key_info(&server, k).status, 200);
    }
    assert_revoked_rows(&db, 2, "after the wake");
    eprintln!("{timeouts} store calls cut short at 1 s");
}
