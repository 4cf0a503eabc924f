//! The usage log's writer. A key check hands its record to a bounded queue
//! and goes on; one task takes what is queued, counts the checks of one
//! key, caller, outcome and user agent within a second into one row
//! ([`UsageRow`]), writes the rows to the store at most once per
//! [`LINGER`], and deletes records past the retention. A full queue drops
//! the record and counts it: a check never waits for the log.

use super::alerts::Watcher;
use super::metrics::UsageMetrics;
use crate::keystore::{KeyHash, KeyStore, UsageOutcome, UsageRecord, UsageRow};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot, watch};

/// Records the queue holds at most, by default.
pub const DEFAULT_QUEUE: usize = 65_536;
/// Records taken from the queue at a time.
const BATCH: usize = 2_000;
/// Rows one store write takes at most: more are written at once.
const MAX_ROWS: usize = 20_000;
/// A record waits at most this long before it is written, gathered with
/// what comes meanwhile: a second's checks of a key from one caller make
/// one row, and one transaction a second costs the store far less than
/// many (BENCHMARKS.md, issue 17).
const LINGER: Duration = Duration::from_secs(1);
/// How often records past the retention are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// Wait before the one retry of a batch the store refused.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The queue side, held by the request handlers.
pub struct UsageLog {
    tx: Option<mpsc::Sender<UsageRecord>>,
    /// The writer's end until the writer starts.
    rx: Mutex<Option<mpsc::Receiver<UsageRecord>>>,
    retention: Duration,
    /// Asks the writer to write everything queued, and answers when done.
    flush_tx: mpsc::Sender<oneshot::Sender<usize>>,
    flush_rx: Mutex<Option<mpsc::Receiver<oneshot::Sender<usize>>>>,
    /// The time of the latest check written.
    written: Arc<watch::Sender<OffsetDateTime>>,
}

impl UsageLog {
    /// A log that keeps records for `retention` and queues at most
    /// `queue`; `None`: no log.
    pub fn new(retention: Option<Duration>, queue: usize) -> Self {
        let (flush_tx, flush_rx) = mpsc::channel(1);
        let flush_rx = Mutex::new(Some(flush_rx));
        let written = Arc::new(watch::Sender::new(OffsetDateTime::UNIX_EPOCH));
        match retention {
            Some(retention) => {
                let (tx, rx) = mpsc::channel(queue.max(1));
                UsageLog {
                    tx: Some(tx),
                    rx: Mutex::new(Some(rx)),
                    retention,
                    flush_tx,
                    flush_rx,
                    written,
                }
            }
            None => UsageLog {
                tx: None,
                rx: Mutex::new(None),
                retention: Duration::ZERO,
                flush_tx,
                flush_rx,
                written,
            },
        }
    }

    /// Writes what is queued, waiting at most `limit`: at a graceful stop,
    /// after the last request. How many records it wrote; `None` when the
    /// writer did not finish in time (what is left is lost).
    pub async fn flush(&self, limit: Duration) -> Option<usize> {
        if self.tx.is_none() {
            return Some(0);
        }
        let (done_tx, done_rx) = oneshot::channel();
        let asked = async {
            self.flush_tx.send(done_tx).await.ok()?;
            done_rx.await.ok()
        };
        tokio::time::timeout(limit, asked).await.ok().flatten()
    }

    /// Waits, at most `limit`, until the check made at `at` is written:
    /// what reads the log for it (an alert's evidence) then finds it.
    /// At once when the log is off. Whether it was written.
    pub async fn written_through(&self, at: OffsetDateTime, limit: Duration) -> bool {
        if self.tx.is_none() {
            return true;
        }
        let mut seen = self.written.subscribe();
        tokio::time::timeout(limit, seen.wait_for(|w| *w >= at))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    pub fn is_on(&self) -> bool {
        self.tx.is_some()
    }

    /// Queues one record; never waits.
    pub fn record(&self, record: UsageRecord, metrics: &UsageMetrics) {
        let Some(tx) = &self.tx else { return };
        if tx.try_send(record).is_err() {
            metrics.dropped("queue_full");
        }
    }

    /// Starts the writer (once); it ends when the log is dropped.
    pub fn start_writer(&self, store: Arc<dyn KeyStore>, metrics: UsageMetrics, watcher: Watcher) {
        let Some(rx) = self.rx.lock().ok().and_then(|mut rx| rx.take()) else {
            return;
        };
        let Some(flush) = self.flush_rx.lock().ok().and_then(|mut rx| rx.take()) else {
            return;
        };
        let retention = self.retention;
        // The alerts read key histories from the store: in a task of their
        // own, fed written batches through a short queue, so that the
        // writer never waits for them (a full queue skips a batch for the
        // alerts only; the next one of the same key looks again).
        let (watch_tx, watch_rx) = mpsc::channel(WATCH_QUEUE);
        tokio::spawn(watch_forever(watch_rx, watcher));
        let log = Writer {
            store,
            metrics,
            watcher: watch_tx,
            written: self.written.clone(),
        };
        tokio::spawn(write_forever(rx, flush, log, retention));
    }
}

/// Where written rows go: the store, the metrics, the alerts and those
/// waiting for a check to be written.
struct Writer {
    store: Arc<dyn KeyStore>,
    metrics: UsageMetrics,
    watcher: mpsc::Sender<Arc<Vec<UsageRow>>>,
    written: Arc<watch::Sender<OffsetDateTime>>,
}

async fn write_forever(
    mut rx: mpsc::Receiver<UsageRecord>,
    mut flush: mpsc::Receiver<oneshot::Sender<usize>>,
    log: Writer,
    retention: Duration,
) {
    let mut taken = Vec::with_capacity(BATCH);
    let mut pending = Pending::default();
    // When the oldest pending record is due; far off while none is.
    let mut due = tokio::time::Instant::now() + PRUNE_EVERY;
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    loop {
        tokio::select! {
            n = rx.recv_many(&mut taken, BATCH) => {
                if n == 0 {
                    log.write(&mut pending).await;
                    break;
                }
                if pending.is_empty() {
                    due = tokio::time::Instant::now() + LINGER;
                }
                for record in taken.drain(..) {
                    log.gather(&mut pending, record).await;
                }
                log.metrics.queue_depth.set(i64::try_from(rx.len()).unwrap_or(i64::MAX));
            }
            _ = tokio::time::sleep_until(due), if !pending.is_empty() => {
                log.write(&mut pending).await;
            }
            Some(done) = flush.recv() => {
                let mut written = 0;
                while let Ok(record) = rx.try_recv() {
                    written += log.gather(&mut pending, record).await;
                }
                written += log.write(&mut pending).await;
                let _ = done.send(written);
            }
            _ = prune.tick() => {
                let before = OffsetDateTime::now_utc() - retention;
                match log.store.prune_usage(before).await {
                    Ok(n) if n > 0 => tracing::info!(records = n, "usage records past the retention deleted"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "usage records past the retention not deleted"),
                }
            }
        }
    }
}

/// What makes two checks one row: everything a record holds but its time
/// below the second.
#[derive(PartialEq, Eq, Hash)]
struct RowKey {
    second: i64,
    key_id: Option<String>,
    unknown_hash: Option<KeyHash>,
    ip: Option<IpAddr>,
    outcome: UsageOutcome,
    user_agent: Option<String>,
}

/// The first and last check's times, and how many.
struct RowCount {
    first: OffsetDateTime,
    last: OffsetDateTime,
    requests: u32,
}

/// Records taken from the queue and not yet written, counted into rows.
#[derive(Default)]
struct Pending {
    rows: HashMap<RowKey, RowCount>,
}

impl Pending {
    fn add(&mut self, r: UsageRecord) {
        let key = RowKey {
            second: r.at.unix_timestamp(),
            key_id: r.key_id,
            unknown_hash: r.unknown_hash,
            ip: r.ip,
            outcome: r.outcome,
            user_agent: r.user_agent,
        };
        let count = self.rows.entry(key).or_insert(RowCount {
            first: r.at,
            last: r.at,
            requests: 0,
        });
        // Checks are queued nearly, not exactly, in time order.
        count.first = count.first.min(r.at);
        count.last = count.last.max(r.at);
        count.requests = count.requests.saturating_add(1);
    }

    fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The rows, in time order, and the records they stand for; empties
    /// what is pending.
    fn take(&mut self) -> (Vec<UsageRow>, usize) {
        let mut rows: Vec<UsageRow> = self
            .rows
            .drain()
            .map(|(k, c)| UsageRow {
                first: UsageRecord {
                    key_id: k.key_id,
                    unknown_hash: k.unknown_hash,
                    at: c.first,
                    ip: k.ip,
                    outcome: k.outcome,
                    user_agent: k.user_agent,
                },
                last: c.last,
                requests: c.requests,
            })
            .collect();
        rows.sort_by_key(|r| r.first.at);
        let records = rows.iter().map(|r| r.requests as usize).sum();
        (rows, records)
    }
}

impl Writer {
    /// Counts one record into what is pending, writing first when that
    /// is full; how many records that write wrote.
    async fn gather(&self, pending: &mut Pending, record: UsageRecord) -> usize {
        let written = if pending.rows.len() >= MAX_ROWS {
            self.write(pending).await
        } else {
            0
        };
        pending.add(record);
        written
    }

    /// Writes what is pending and hands it to the alerts; how many
    /// records were written.
    async fn write(&self, pending: &mut Pending) -> usize {
        if pending.is_empty() {
            return 0;
        }
        let (rows, records) = pending.take();
        if !write_batch(&*self.store, &rows, records, &self.metrics).await {
            return 0;
        }
        if let Some(latest) = rows.iter().map(|r| r.last).max() {
            self.written.send_if_modified(|w| {
                let later = latest > *w;
                *w = (*w).max(latest);
                later
            });
        }
        let _ = self.watcher.try_send(Arc::new(rows));
        records
    }
}

/// Batches waiting for the alerts' look, at most.
const WATCH_QUEUE: usize = 16;

/// The alerts' task: each written batch, and every second what is due.
async fn watch_forever(mut rx: mpsc::Receiver<Arc<Vec<UsageRow>>>, mut watcher: Watcher) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            batch = rx.recv() => match batch {
                Some(batch) => watcher.after_batch(&batch).await,
                None => break,
            },
            _ = tick.tick() => watcher.run_due().await,
        }
    }
}

/// Writes one batch, retrying once; a batch the store refuses twice is
/// dropped and counted (the queue keeps filling meanwhile, and would drop
/// records anyway). Whether it was written.
async fn write_batch(
    store: &dyn KeyStore,
    rows: &[UsageRow],
    records: usize,
    metrics: &UsageMetrics,
) -> bool {
    let mut error = None;
    for attempt in 0..2 {
        if attempt > 0 {
            tokio::time::sleep(RETRY_AFTER).await;
        }
        match store.record_usage(rows).await {
            Ok(()) => {
                metrics.written.inc_by(records as u64);
                metrics.rows_written.inc_by(rows.len() as u64);
                metrics.writes.inc();
                return true;
            }
            Err(e) => error = Some(e),
        }
    }
    if let Some(e) = error {
        tracing::warn!(error = %e, records, "usage records not written; dropped");
    }
    metrics.dropped_by("store_error", records as u64);
    false
}
