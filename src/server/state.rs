//! The state every handler shares: the store, rate limits and settings.

use super::rate_limit::RateLimits;
use crate::keystore::KeyStore;
use ipnet::IpNet;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// How often a key's last-used time is written at most.
const TOUCH_INTERVAL: Duration = Duration::from_secs(60);

/// Settings of `keywarden serve`.
#[derive(Debug, Clone, Default)]
pub struct ServerConfig {
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
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
    last_touch: Mutex<HashMap<String, Instant>>,
}

impl AppState {
    pub fn new(store: Arc<dyn KeyStore>, config: ServerConfig) -> Self {
        AppState {
            inner: Arc::new(Inner {
                store,
                config,
                limits: RateLimits::new(),
                last_touch: Mutex::new(HashMap::new()),
            }),
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

    /// Starts the periodic clean-up of per-key memory.
    pub(super) fn start_housekeeping(&self) {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(TOUCH_INTERVAL);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                inner.limits.forget_idle();
                if let Ok(mut seen) = inner.last_touch.lock() {
                    seen.retain(|_, at| at.elapsed() < TOUCH_INTERVAL);
                }
            }
        });
    }
}
