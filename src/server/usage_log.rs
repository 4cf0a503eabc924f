//! The usage log's writer. A key check hands its record to a bounded queue
//! and goes on; one task writes what is queued to the store in batches, at
//! most one write per [`LINGER`], and deletes records past the retention. A full queue drops the record and
//! counts it: a check never waits for the log.

use super::alerts::Watcher;
use super::metrics::UsageMetrics;
use crate::keystore::{KeyStore, UsageRecord};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

/// Records the queue holds at most, by default.
pub const DEFAULT_QUEUE: usize = 65_536;
/// Records one store write takes at most.
const BATCH: usize = 2_000;
/// A write waits this long after the one before, gathering records.
const LINGER: Duration = Duration::from_millis(100);
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
}

impl UsageLog {
    /// A log that keeps records for `retention` and queues at most
    /// `queue`; `None`: no log.
    pub fn new(retention: Option<Duration>, queue: usize) -> Self {
        let (flush_tx, flush_rx) = mpsc::channel(1);
        let flush_rx = Mutex::new(Some(flush_rx));
        match retention {
            Some(retention) => {
                let (tx, rx) = mpsc::channel(queue.max(1));
                UsageLog {
                    tx: Some(tx),
                    rx: Mutex::new(Some(rx)),
                    retention,
                    flush_tx,
                    flush_rx,
                }
            }
            None => UsageLog {
                tx: None,
                rx: Mutex::new(None),
                retention: Duration::ZERO,
                flush_tx,
                flush_rx,
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
        tokio::spawn(write_forever(
            rx, flush, store, metrics, retention, watch_tx,
        ));
    }
}

async fn write_forever(
    mut rx: mpsc::Receiver<UsageRecord>,
    mut flush: mpsc::Receiver<oneshot::Sender<usize>>,
    store: Arc<dyn KeyStore>,
    metrics: UsageMetrics,
    retention: Duration,
    watcher: mpsc::Sender<Arc<Vec<UsageRecord>>>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    loop {
        tokio::select! {
            n = rx.recv_many(&mut batch, BATCH) => {
                if n == 0 {
                    break;
                }
                metrics.queue_depth.set(i64::try_from(rx.len()).unwrap_or(i64::MAX));
                let next = tokio::time::Instant::now() + LINGER;
                if write_batch(&*store, &batch, &metrics).await {
                    let _ = watcher.try_send(Arc::new(std::mem::take(&mut batch)));
                }
                batch.clear();
                // What comes meanwhile goes in the next write: one
                // transaction for a tenth of a second's checks costs the
                // store far less than one for every few.
                tokio::time::sleep_until(next).await;
            }
            Some(done) = flush.recv() => {
                let mut written = 0;
                loop {
                    while batch.len() < BATCH {
                        let Ok(record) = rx.try_recv() else { break };
                        batch.push(record);
                    }
                    if batch.is_empty() {
                        break;
                    }
                    if write_batch(&*store, &batch, &metrics).await {
                        written += batch.len();
                    }
                    batch.clear();
                }
                let _ = done.send(written);
            }
            _ = prune.tick() => {
                let before = OffsetDateTime::now_utc() - retention;
                match store.prune_usage(before).await {
                    Ok(n) if n > 0 => tracing::info!(records = n, "usage records past the retention deleted"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "usage records past the retention not deleted"),
                }
            }
        }
    }
}

/// Batches waiting for the alerts' look, at most.
const WATCH_QUEUE: usize = 16;

/// The alerts' task: each written batch, and every second what is due.
async fn watch_forever(mut rx: mpsc::Receiver<Arc<Vec<UsageRecord>>>, mut watcher: Watcher) {
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
async fn write_batch(store: &dyn KeyStore, batch: &[UsageRecord], metrics: &UsageMetrics) -> bool {
    let mut error = None;
    for attempt in 0..2 {
        if attempt > 0 {
            tokio::time::sleep(RETRY_AFTER).await;
        }
        match store.record_usage(batch).await {
            Ok(()) => {
                metrics.written.inc_by(batch.len() as u64);
                metrics.writes.inc();
                return true;
            }
            Err(e) => error = Some(e),
        }
    }
    if let Some(e) = error {
        tracing::warn!(error = %e, records = batch.len(), "usage records not written; dropped");
    }
    metrics.dropped_by("store_error", batch.len() as u64);
    false
}
