//! The state every handler shares: the store, rate limits and settings.

use super::body::BodyBudget;
use super::metrics::Metrics;
use super::rate_limit::{RateLimitMode, RateLimits};
use super::usage_log::UsageLog;
use crate::keystore::{KeyStore, NewAlert, STILL_IN_USE, StoreError};
use crate::partner::GithubKeys;
use ipnet::IpNet;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// How often a key's last-used time is written at most.
const TOUCH_INTERVAL: Duration = Duration::from_secs(60);
/// How long a "still in use" alert waits for the usage log to write the
/// attempt that raised it (the log writes once a second).
const WRITTEN_WITHIN: Duration = Duration::from_secs(10);
/// Tries at queueing a "still in use" alert, a second apart.
const QUEUE_ALERT_TRIES: usize = 3;

/// How long a request waits on the key store by default before it is
/// answered 503 (GitHub's deliveries time out after about 10 s).
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a partner body may take to arrive by default.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// What all partner bodies being read at once may hold by default.
pub const DEFAULT_PARTNER_BODY_BUDGET: usize = 32 << 20;

/// The default path of the partner endpoint.
pub const DEFAULT_PARTNER_PATH: &str = "/github/secret-scanning";

/// Settings of `keywarden serve`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Where GitHub posts secret-scanning reports.
    pub partner_path: String,
    /// The longest a request waits on the key store; a store that has not
    /// answered by then counts as unavailable.
    pub store_timeout: Duration,
    /// The longest a partner body may take to arrive.
    pub body_timeout: Duration,
    /// What all partner bodies being read at once may hold, in bytes.
    pub partner_body_budget: usize,
    /// How keys' rate limits are counted.
    pub rate_limits: RateLimitMode,
    /// How long the usage log keeps key checks; `None`: no usage log.
    pub usage_retention: Option<Duration>,
    /// Usage records waiting to be written at most; more are dropped.
    pub usage_queue: usize,
    /// A key revoked because it leaked and tried again this long after its
    /// revocation gets its owner one "still in use" alert.
    pub alert_revoked_use_after: Duration,
    /// The new-network and spike alerts' thresholds, and the webhook.
    pub alerts: super::AlertConfig,
}

/// How long after a leaked key's revocation a use of it alerts, by default.
pub const DEFAULT_ALERT_REVOKED_USE_AFTER: Duration = Duration::from_secs(600);

/// How long the usage log keeps key checks by default.
pub const DEFAULT_USAGE_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            trusted_proxies: Vec::new(),
            partner_path: DEFAULT_PARTNER_PATH.to_string(),
            store_timeout: DEFAULT_STORE_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            partner_body_budget: DEFAULT_PARTNER_BODY_BUDGET,
            rate_limits: RateLimitMode::Local,
            usage_retention: Some(DEFAULT_USAGE_RETENTION),
            usage_queue: super::usage_log::DEFAULT_QUEUE,
            alert_revoked_use_after: DEFAULT_ALERT_REVOKED_USE_AFTER,
            alerts: super::AlertConfig::default(),
        }
    }
}

/// Shared, cheaply cloned state of the service.
#[derive(Clone)]
pub struct AppState {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub store: Arc<dyn KeyStore>,
    pub config: ServerConfig,
    pub limits: RateLimits,
    pub usage: UsageLog,
    pub github_keys: Arc<GithubKeys>,
    pub metrics: Metrics,
    pub body_budget: BodyBudget,
    last_touch: Mutex<HashMap<String, Instant>>,
    /// Keys this replica has queued a "still in use" alert for (the store
    /// keeps it to one per key across replicas; this saves it the asking).
    alerted: Mutex<HashSet<String>>,
}

impl AppState {
    pub fn new(
        store: Arc<dyn KeyStore>,
        github_keys: Arc<GithubKeys>,
        config: ServerConfig,
    ) -> Self {
        let metrics = Metrics::new();
        let limits = RateLimits::new(
            config.rate_limits,
            store.clone(),
            config.store_timeout,
            metrics.rate_limit_fallbacks.clone(),
        );
        let usage = UsageLog::new(config.usage_retention, config.usage_queue);
        AppState {
            inner: Arc::new(Inner {
                store,
                body_budget: BodyBudget::new(config.partner_body_budget, super::BODY_LIMIT),
                config,
                limits,
                usage,
                github_keys,
                metrics,
                last_touch: Mutex::new(HashMap::new()),
                alerted: Mutex::new(HashSet::new()),
            }),
        }
    }

    /// Runs one store call within the store timeout. A store that accepts
    /// connections but does not answer (stopped, partitioned, locked) is
    /// then treated like one that is down: the request gets 503, not a hang.
    /// The call runs as its own task and is never cancelled: past the
    /// timeout the request stops waiting, but the call still finishes (or
    /// fails) on its own once the store answers. Cancelling a sqlx future
    /// mid-`BEGIN` can return a connection to the pool inside an open
    /// transaction (sqlx 0.8.6 arms its rollback only once `BEGIN` has been
    /// answered). A report answered
    /// 503 may so still take effect; GitHub's retry then finds it done.
    pub(super) async fn store_call<T, F, Fut>(&self, call: F) -> Result<T, StoreError>
    where
        F: FnOnce(Arc<dyn KeyStore>) -> Fut,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
        T: Send + 'static,
    {
        let limit = self.inner.config.store_timeout;
        let task = tokio::spawn(call(self.inner.store.clone()));
        match tokio::time::timeout(limit, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join_error)) => {
                tracing::error!(error = %join_error, "store call panicked");
                Err(StoreError::TaskFailed(join_error.to_string()))
            }
            Err(_) => {
                self.inner.metrics.store_timeouts.inc();
                Err(StoreError::TimedOut(limit))
            }
        }
    }

    /// Records a key's use, writing to the store at most once a minute per
    /// key and never delaying the request.
    pub(super) fn touch(&self, id: &str) {
        let now = Instant::now();
        {
            let Ok(mut seen) = self.inner.last_touch.lock() else {
                return;
            };
            match seen.get(id) {
                Some(at) if now.duration_since(*at) < TOUCH_INTERVAL => return,
                _ => seen.insert(id.to_string(), now),
            };
        }
        let store = self.inner.store.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            // Losing a last-used time is harmless; the next use writes it.
            let _ = store.touch(&id, OffsetDateTime::now_utc()).await;
        });
    }

    /// A key revoked at `revoked_at` was tried at `now`: past the alert
    /// delay, queues its owner's "still in use" alert (once), without
    /// delaying the request.
    pub(super) fn revoked_key_tried(
        &self,
        id: &str,
        revoked_at: OffsetDateTime,
        now: OffsetDateTime,
    ) {
        let delay = self.inner.config.alert_revoked_use_after;
        if now - revoked_at < delay {
            return;
        }
        {
            let Ok(mut alerted) = self.inner.alerted.lock() else {
                return;
            };
            if alerted.len() >= 100_000 {
                alerted.clear();
            }
            if !alerted.insert(id.to_string()) {
                return;
            }
        }
        let inner = self.inner.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            // The email shows the attempts since the revocation from the
            // usage log: queued once this one is written, it holds it.
            if !inner.usage.written_through(now, WRITTEN_WITHIN).await {
                tracing::debug!(
                    key = id,
                    "attempt not yet in the usage log; alert queued anyway"
                );
            }
            let alert = NewAlert {
                key_id: &id,
                kind: STILL_IN_USE,
                dedup: "",
                evidence: None,
                at: now,
                webhook: inner.config.alerts.webhook.as_deref(),
            };
            // The attempts that follow soon after this one are skipped as
            // alerted while it waits for the log: retry a store error (a
            // busy SQLite) here rather than leave it to an attempt that may
            // not come.
            let mut queued = inner.store.queue_alert(&alert).await;
            for _ in 1..QUEUE_ALERT_TRIES {
                if queued.is_ok() {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                queued = inner.store.queue_alert(&alert).await;
            }
            match queued {
                Ok(true) => {
                    inner.metrics.alert("still_in_use");
                    tracing::info!(key = id, "revoked key still in use: owner alert queued");
                }
                Ok(false) => {}
                Err(e) => {
                    // Asked again at the next attempt.
                    if let Ok(mut alerted) = inner.alerted.lock() {
                        alerted.remove(&id);
                    }
                    tracing::warn!(key = id, error = %e, "still-in-use alert not queued");
                }
            }
        });
    }

    /// Loads GitHub's keys in the background until it succeeds, backing off
    /// from 1 s to 60 s; partner requests get 503 meanwhile.
    pub(super) fn start_key_loading(&self) {
        if self.inner.github_keys.is_loaded() {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut delay = Duration::from_secs(1);
            loop {
                let Some(inner) = weak.upgrade() else { break };
                match inner.github_keys.load().await {
                    Ok(n) => {
                        inner.metrics.key_refresh("ok");
                        tracing::info!(keys = n, "loaded GitHub's public keys");
                        break;
                    }
                    Err(e) => {
                        inner.metrics.key_refresh("error");
                        tracing::warn!(error = %e, retry_in_s = delay.as_secs(), "GitHub's public keys not loaded");
                    }
                }
                drop(inner);
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(60));
            }
        });
    }

    /// Starts the periodic clean-up of per-key memory, and the shared
    /// rate limiter's reports (every second) and pruning (once a minute).
    pub(super) fn start_housekeeping(&self) {
        let watcher = super::alerts::Watcher::new(
            self.inner.store.clone(),
            self.inner.config.alerts.clone(),
            self.inner.metrics.usage.clone(),
        );
        self.inner.usage.start_writer(
            self.inner.store.clone(),
            self.inner.metrics.usage.clone(),
            watcher,
        );
        if matches!(self.inner.limits, RateLimits::Shared(_)) {
            let weak = Arc::downgrade(&self.inner);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(super::rate_limit::REPORT_EVERY);
                for n in 0u64.. {
                    tick.tick().await;
                    let Some(inner) = weak.upgrade() else { break };
                    inner.limits.tick(n % 60 == 0).await;
                }
            });
            let weak = Arc::downgrade(&self.inner);
            tokio::spawn(async move {
                loop {
                    let Some(inner) = weak.upgrade() else { break };
                    inner.limits.refill(Duration::from_millis(200)).await;
                }
            });
        }
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(TOUCH_INTERVAL);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                inner.limits.forget_idle();
                // Give memory freed after a burst of connections back to
                // the system (glibc keeps it in its arenas otherwise).
                #[cfg(all(target_os = "linux", target_env = "gnu"))]
                // SAFETY: malloc_trim only releases free heap pages.
                unsafe {
                    libc::malloc_trim(0);
                }
                if let Ok(mut seen) = inner.last_touch.lock() {
                    seen.retain(|_, at| at.elapsed() < TOUCH_INTERVAL);
                }
            }
        });
    }
}
