//! Per-key rate limits: one keyed limiter per key type, each with that
//! type's requests per minute.

use crate::keystore::KeyType;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;

/// The limiters of all key types, keyed by key id.
pub struct RateLimits {
    by_type: Vec<(KeyType, DefaultKeyedRateLimiter<String>)>,
    clock: DefaultClock,
}

impl RateLimits {
    pub fn new() -> Self {
        let by_type = KeyType::ALL
            .into_iter()
            .map(|t| {
                let per_minute =
                    NonZeroU32::new(t.requests_per_minute()).unwrap_or(NonZeroU32::MIN);
                (t, RateLimiter::keyed(Quota::per_minute(per_minute)))
            })
            .collect();
        RateLimits {
            by_type,
            clock: DefaultClock::default(),
        }
    }

    /// Counts one request of key `id`; `Err(seconds)` when it is over its
    /// type's limit and may retry after that many seconds.
    pub fn check(&self, key_type: KeyType, id: &str) -> Result<(), u64> {
        let Some((_, limiter)) = self.by_type.iter().find(|(t, _)| *t == key_type) else {
            return Ok(());
        };
        limiter.check_key(&id.to_string()).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }

    /// Forgets keys whose buckets are full again, so memory stays flat.
    pub fn forget_idle(&self) {
        for (_, limiter) in &self.by_type {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}
