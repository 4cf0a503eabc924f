//! Per-key rate limits: a key makes at most its type's per-minute limit of
//! requests in any 60-second window, counted across every replica that
//! shares the store.
//!
//! One replica counts in memory ([`LocalLimiter`]): one-second slots, 61 of
//! them, since any 60-second span touches at most 61 slots. Replicas on one
//! PostgreSQL store ([`SharedLimiter`]) lease tokens from counts kept there:
//! a replica claims a few of a key's tokens (at most a sixtieth of its
//! limit), spends them within [`LEASE`], and reports what it spent and
//! gives back what it did not spend with its next claim of the key, or
//! within a second of the lease's end. A lease half spent is refilled in
//! the background before it runs out, so a steady client rarely waits for
//! the store. Claims go to the store together, one statement per batch
//! (the keys waiting for tokens only; ended leases go in a report each
//! second), so most requests are decided in memory. The store grants at
//! most what is left of a key's 61-slot window, counting a grant where it
//! was made and a reported spend where it was reported (never before it
//! happened).
//!
//! When the shared counts cannot be reached, a replica limits keys on its
//! own (each replica admits up to the limit): the key itself was just read
//! from the same store, so this is a passing fault of the counter, and
//! refusing keys that work would turn it into an outage. It is logged and
//! counted (`keywarden_rate_limit_fallbacks_total`).

use crate::keystore::{KeyStore, KeyType, RateClaim, RateGrant, StoreError};
use prometheus_client::metrics::counter::Counter;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Slots of the in-memory window: any 60 s span touches at most 61.
const LOCAL_SLOTS: u64 = 61;

/// How long a leased token may be spent after its claim was sent. A spend
/// not reported yet is counted in its grant's slot: the lease and a
/// report's delay must stay well under a minute for that slot to still be
/// in the window.
pub const LEASE: Duration = Duration::from_secs(10);

/// How often the spends and unspent tokens of expired leases are
/// reported.
pub const REPORT_EVERY: Duration = Duration::from_secs(1);

/// Keys a report statement carries at most: a short transaction holds
/// its keys' locks briefly.
const REPORT_BATCH: usize = 256;

/// How long a replica limits on its own after the shared counts failed,
/// before it tries them again.
const FALLBACK_FOR: Duration = Duration::from_secs(1);

/// How rate limits are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimitMode {
    /// In this process only: right for one replica.
    Local,
    /// In the store, for every replica that shares it (PostgreSQL).
    Shared,
    /// Not at all (a gateway in front limits).
    Off,
}

/// The limiter `serve` runs with.
pub enum RateLimits {
    Off,
    Local(LocalLimiter),
    Shared(SharedLimiter),
}

impl RateLimits {
    pub fn new(
        mode: RateLimitMode,
        store: Arc<dyn KeyStore>,
        store_timeout: Duration,
        fallbacks: Counter,
    ) -> Self {
        match mode {
            RateLimitMode::Off => RateLimits::Off,
            RateLimitMode::Local => RateLimits::Local(LocalLimiter::default()),
            RateLimitMode::Shared => {
                RateLimits::Shared(SharedLimiter::new(store, store_timeout, fallbacks))
            }
        }
    }

    /// Counts one request of key `id`; `Err(seconds)` when it is over its
    /// type's limit and may retry after that many seconds.
    pub async fn check(&self, key_type: KeyType, id: &str) -> Result<(), u64> {
        let limit = key_type.requests_per_minute();
        match self {
            RateLimits::Off => Ok(()),
            RateLimits::Local(local) => local.check(id, limit, wall_clock()),
            RateLimits::Shared(shared) => shared.check(id, limit).await,
        }
    }

    /// Forgets keys not seen for a while, so memory stays flat.
    pub fn forget_idle(&self) {
        match self {
            RateLimits::Off => {}
            RateLimits::Local(local) => local.forget_idle(wall_clock()),
            RateLimits::Shared(shared) => shared.forget_idle(),
        }
    }

    /// The shared limiter's background refills: waits up to `wait` for
    /// leases running low, then claims their next tokens.
    pub async fn refill(&self, wait: Duration) {
        if let RateLimits::Shared(shared) = self {
            let _ = tokio::time::timeout(wait, shared.refill_wanted.notified()).await;
            shared.claim_wanted().await;
        }
    }

    /// The shared limiter's periodic work: report spends, give back
    /// expired tokens and, now and then, drop old counts from the store.
    pub async fn tick(&self, prune: bool) {
        if let RateLimits::Shared(shared) = self {
            shared.report().await;
            if prune && let Err(e) = shared.store.prune_rates().await {
                tracing::debug!(error = %e, "old rate counts not pruned");
            }
        }
    }
}

/// Time since the Unix epoch by this machine's clock.
fn wall_clock() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Whole seconds from `now` until `at`, at least one.
fn seconds_until(at: Duration, now: Duration) -> u64 {
    let wait = at.saturating_sub(now);
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// Requests of one key in the last 61 one-second slots.
#[derive(Debug, Clone)]
struct SlotWindow {
    counts: [u32; LOCAL_SLOTS as usize],
    /// The newest slot counted.
    newest: u64,
}

impl SlotWindow {
    fn new(slot: u64) -> Self {
        SlotWindow {
            counts: [0; LOCAL_SLOTS as usize],
            newest: slot,
        }
    }

    fn cell(slot: u64) -> usize {
        (slot % LOCAL_SLOTS) as usize
    }

    /// Moves the window on to `slot`, emptying the slots that left it.
    fn advance(&mut self, slot: u64) {
        if slot <= self.newest {
            return;
        }
        if slot - self.newest >= LOCAL_SLOTS {
            self.counts = [0; LOCAL_SLOTS as usize];
        } else {
            for s in self.newest + 1..=slot {
                self.counts[Self::cell(s)] = 0;
            }
        }
        self.newest = slot;
    }

    fn used(&self) -> u32 {
        self.counts.iter().sum()
    }

    /// Counts one request in `slot` when the window holds fewer than
    /// `limit`; otherwise the first slot from which it has room again.
    fn take(&mut self, slot: u64, limit: u32) -> Result<(), u64> {
        self.advance(slot);
        let mut left = self.used();
        if left < limit {
            self.counts[Self::cell(slot)] += 1;
            return Ok(());
        }
        let oldest = slot.saturating_sub(LOCAL_SLOTS - 1);
        for s in oldest..=slot {
            left -= self.counts[Self::cell(s)];
            if left < limit {
                return Err(s + LOCAL_SLOTS);
            }
        }
        Err(slot + LOCAL_SLOTS)
    }
}

/// Rate limits counted in this process.
#[derive(Default)]
pub struct LocalLimiter {
    windows: Mutex<HashMap<String, SlotWindow>>,
}

impl LocalLimiter {
    /// Counts one request of `id` at `now` (since the Unix epoch).
    fn check(&self, id: &str, limit: u32, now: Duration) -> Result<(), u64> {
        let slot = now.as_secs();
        let Ok(mut windows) = self.windows.lock() else {
            return Ok(());
        };
        let window = match windows.get_mut(id) {
            Some(w) => w,
            None => windows
                .entry(id.to_string())
                .or_insert_with(|| SlotWindow::new(slot)),
        };
        window
            .take(slot, limit)
            .map_err(|room| seconds_until(Duration::from_secs(room), now))
    }

    fn forget_idle(&self, now: Duration) {
        if let Ok(mut windows) = self.windows.lock() {
            windows.retain(|_, w| {
                w.advance(now.as_secs());
                w.used() > 0
            });
            windows.shrink_to_fit();
        }
    }
}

/// Tokens of one key leased from the shared counts.
#[derive(Debug)]
struct Lease {
    limit: u32,
    /// Tokens left to spend …
    tokens: u32,
    /// … until then.
    valid_until: Instant,
    /// The store's slot they were granted in (where a refund goes).
    slot: i64,
    /// Tokens of this lease spent so far: sizes the next claim.
    spent: u32,
    /// Tokens the lease was granted.
    granted: u32,
    /// Tokens spent and not yet reported to the store.
    unreported: u32,
    /// The window is full until then (the store said so).
    full_until: Option<Instant>,
    /// A request is waiting for the next batch to claim tokens.
    wanted: bool,
    last_seen: Instant,
}

impl Lease {
    fn new(limit: u32, now: Instant) -> Self {
        Lease {
            limit,
            tokens: 0,
            valid_until: now,
            slot: 0,
            spent: 0,
            granted: 0,
            unreported: 0,
            full_until: None,
            wanted: false,
            last_seen: now,
        }
    }

    /// Tokens to ask for: enough for half a lease at the pace this one was
    /// spent at (at least twice what it spent, when it ran out), or what
    /// it spent when it expired, within a sixtieth of the limit (a
    /// second's share of it), so that the tokens replicas hold unspent
    /// never crowd out a client that stays under its limit.
    fn next_want(&self, now: Instant) -> u32 {
        if now >= self.valid_until {
            return self.spent.clamp(1, self.cap());
        }
        // How long the lease has run (it is valid for a lease from its
        // claim), and the tokens that pace would spend in half a lease.
        let ran = LEASE
            .saturating_sub(self.valid_until - now)
            .max(Duration::from_millis(100));
        let pace = f64::from(self.spent) * (LEASE / 2).as_secs_f64() / ran.as_secs_f64();
        let mut want = pace.ceil().min(f64::from(u32::MAX)) as u32;
        if self.tokens == 0 {
            want = want.max(self.spent.saturating_mul(2));
        }
        want.clamp(1, self.cap())
    }

    fn cap(&self) -> u32 {
        (self.limit / 60).max(1)
    }
}

enum Decision {
    Admit,
    /// Admitted, and the lease is running low: refill it now.
    AdmitRefill,
    Refuse(u64),
    Claim,
}

/// Rate limits counted in the store, for replicas that share it.
pub struct SharedLimiter {
    store: Arc<dyn KeyStore>,
    store_timeout: Duration,
    leases: Mutex<HashMap<String, Lease>>,
    /// Held by the one batch in flight; requests queue behind it and are
    /// claimed together in the next.
    claiming: tokio::sync::Mutex<()>,
    /// Wakes the background refill: a lease is half spent.
    refill_wanted: tokio::sync::Notify,
    /// Limiting on our own until then: the shared counts failed.
    fallback_until: Mutex<Option<Instant>>,
    fallback: LocalLimiter,
    fallbacks: Counter,
}

impl SharedLimiter {
    fn new(store: Arc<dyn KeyStore>, store_timeout: Duration, fallbacks: Counter) -> Self {
        SharedLimiter {
            store,
            store_timeout,
            leases: Mutex::new(HashMap::new()),
            claiming: tokio::sync::Mutex::new(()),
            refill_wanted: tokio::sync::Notify::new(),
            fallback_until: Mutex::new(None),
            fallback: LocalLimiter::default(),
            fallbacks,
        }
    }

    async fn check(&self, id: &str, limit: u32) -> Result<(), u64> {
        match self.spend(id, limit) {
            Decision::Admit => return Ok(()),
            Decision::AdmitRefill => {
                self.refill_wanted.notify_one();
                return Ok(());
            }
            Decision::Refuse(secs) => return Err(secs),
            Decision::Claim => {}
        }
        if !self.falling_back() {
            // One batch at a time: requests that queue here are claimed
            // together in the next one.
            let _turn = self.claiming.lock().await;
            // The batch before may have brought this key's tokens.
            match self.spend(id, limit) {
                Decision::Admit | Decision::AdmitRefill => return Ok(()),
                Decision::Refuse(secs) => return Err(secs),
                Decision::Claim => {}
            }
            if !self.falling_back() {
                let claims = self.collect(true);
                if let Ok(decision) = self.send(claims, Some(id)).await {
                    return match decision {
                        Decision::Admit | Decision::AdmitRefill => Ok(()),
                        Decision::Refuse(secs) => Err(secs),
                        // The store answered for other keys only.
                        Decision::Claim => Err(1),
                    };
                }
            }
        }
        self.fallbacks.inc();
        self.fallback.check(id, limit, wall_clock())
    }

    /// Spends a leased token of `id`, or says why not.
    fn spend(&self, id: &str, limit: u32) -> Decision {
        let now = Instant::now();
        let Ok(mut leases) = self.leases.lock() else {
            return Decision::Admit;
        };
        let lease = match leases.get_mut(id) {
            Some(l) => l,
            None => leases
                .entry(id.to_string())
                .or_insert_with(|| Lease::new(limit, now)),
        };
        lease.limit = limit;
        lease.last_seen = now;
        if let Some(until) = lease.full_until {
            if now < until {
                return Decision::Refuse(seconds_until(until - now, Duration::ZERO));
            }
            lease.full_until = None;
        }
        if lease.tokens > 0 && now < lease.valid_until {
            lease.tokens -= 1;
            lease.spent += 1;
            lease.unreported += 1;
            if !lease.wanted && lease.granted > 1 && lease.tokens * 2 <= lease.granted {
                lease.wanted = true;
                return Decision::AdmitRefill;
            }
            return Decision::Admit;
        }
        lease.wanted = true;
        Decision::Claim
    }

    fn falling_back(&self) -> bool {
        self.fallback_until
            .lock()
            .map(|until| until.is_some_and(|u| Instant::now() < u))
            .unwrap_or(false)
    }

    /// Claims tokens for the leases that want them, in one batch.
    async fn claim_wanted(&self) {
        if self.falling_back() {
            return;
        }
        let _turn = self.claiming.lock().await;
        let claims = self.collect(true);
        if !claims.is_empty() {
            let _ = self.send(claims, None).await;
        }
    }

    /// Reports spends and gives back the unspent tokens of expired leases,
    /// in batches of [`REPORT_BATCH`] keys. Beside claims, not behind
    /// them: what it carries was taken out of the leases, and moving counts
    /// never raises one, so a claim racing it grants no more than it may.
    async fn report(&self) {
        let claims = self.collect(false);
        for batch in claims.chunks(REPORT_BATCH) {
            // A refund lost is a few tokens counted that were not spent,
            // a report lost a few spends counted early; both leave the
            // window within a minute.
            let _ = self.send(batch.to_vec(), None).await;
        }
    }

    /// The claims of the next batch: with `with_wanted`, tokens for every
    /// key that wants them (a request waits, or its lease runs low), with
    /// their spends and what is left of their leases; otherwise (the
    /// report) the spends not reported yet and the unspent tokens of
    /// expired leases. A live lease's spends wait for the claim that
    /// replaces it or the report after it expires: until then they are
    /// counted in its grant's slot, which holds the whole grant, and a
    /// report a second a key would be most of the store's work. It takes
    /// what it claims out of the leases.
    fn collect(&self, with_wanted: bool) -> Vec<RateClaim> {
        let now = Instant::now();
        let Ok(mut leases) = self.leases.lock() else {
            return Vec::new();
        };
        let mut claims = Vec::new();
        for (id, lease) in leases.iter_mut() {
            if with_wanted && !lease.wanted {
                continue;
            }
            let want = with_wanted && lease.wanted;
            // A new grant replaces the lease, and an expired one is over:
            // what is left of it goes back. A live lease's spends are
            // counted in its grant's slot until its claim or report carries
            // them, within a lease and a report of the grant: well inside
            // the window.
            if !want && now < lease.valid_until {
                continue;
            }
            if !want && lease.tokens == 0 && lease.unreported == 0 {
                continue;
            }
            claims.push(RateClaim {
                key_id: id.clone(),
                limit: lease.limit,
                want: if want { lease.next_want(now) } else { 0 },
                refund: lease.tokens,
                spent: lease.unreported,
                grant_slot: lease.slot,
            });
            lease.unreported = 0;
            lease.tokens = 0;
            if want {
                lease.wanted = false;
            } else {
                lease.spent = 0;
            }
        }
        claims
    }

    /// Sends a batch and takes in its grants; for `requester`, spends one
    /// of its new tokens at once (no other request can take it first) or
    /// says how long its key's window is full.
    async fn send(
        &self,
        claims: Vec<RateClaim>,
        requester: Option<&str>,
    ) -> Result<Decision, StoreError> {
        let sent = Instant::now();
        let wanted: std::collections::HashSet<&str> = claims
            .iter()
            .filter(|c| c.want > 0)
            .map(|c| c.key_id.as_str())
            .collect();
        let outcome = tokio::time::timeout(self.store_timeout, self.store.claim_rates(&claims))
            .await
            .unwrap_or(Err(StoreError::TimedOut(self.store_timeout)));
        match outcome {
            Ok(grants) => {
                let decision = self.apply(&grants, &wanted, sent, requester);
                if let Ok(mut until) = self.fallback_until.lock()
                    && until.take().is_some()
                {
                    tracing::info!("shared rate counter answers again");
                }
                Ok(decision)
            }
            Err(e) => {
                if let Ok(mut until) = self.fallback_until.lock() {
                    if until.is_none() {
                        tracing::warn!(error = %e, "shared rate counter failed; this replica limits keys on its own until it answers");
                    }
                    *until = Some(Instant::now() + FALLBACK_FOR);
                }
                Err(e)
            }
        }
    }

    fn apply(
        &self,
        grants: &[RateGrant],
        wanted: &std::collections::HashSet<&str>,
        sent: Instant,
        requester: Option<&str>,
    ) -> Decision {
        let received = Instant::now();
        let Ok(mut leases) = self.leases.lock() else {
            return Decision::Admit;
        };
        let mut decision = Decision::Claim;
        for grant in grants {
            let Some(lease) = leases.get_mut(&grant.key_id) else {
                continue;
            };
            if !wanted.contains(grant.key_id.as_str()) {
                // A report or a refund only: the lease stays as it is.
                continue;
            }
            lease.tokens = grant.granted;
            lease.granted = grant.granted;
            lease.slot = grant.slot;
            // Counted from when the claim left, which is before the store
            // granted it: a token is never spent later than a lease after.
            lease.valid_until = sent + LEASE;
            lease.spent = 0;
            lease.full_until = match (grant.granted, grant.room_in) {
                (0, Some(room)) => Some(received + room),
                _ => None,
            };
            if requester == Some(grant.key_id.as_str()) {
                decision = match lease.full_until {
                    Some(until) => {
                        Decision::Refuse(seconds_until(until - received, Duration::ZERO))
                    }
                    None if lease.tokens > 0 => {
                        lease.tokens -= 1;
                        lease.spent += 1;
                        lease.unreported += 1;
                        Decision::Admit
                    }
                    None => Decision::Claim,
                };
            }
        }
        decision
    }

    fn forget_idle(&self) {
        let now = Instant::now();
        if let Ok(mut leases) = self.leases.lock() {
            leases.retain(|_, l| {
                l.tokens > 0
                    || l.unreported > 0
                    || now.duration_since(l.last_seen) < Duration::from_secs(120)
            });
            leases.shrink_to_fit();
        }
        self.fallback.forget_idle(wall_clock());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: f64) -> Duration {
        Duration::from_secs_f64(1_000_000.0 + secs)
    }

    #[test]
    fn no_sixty_seconds_hold_more_than_the_limit() {
        let limiter = LocalLimiter::default();
        // A client that tries every 10 ms for five minutes.
        let mut admitted = Vec::new();
        for i in 0..30_000 {
            let t = f64::from(i) * 0.01;
            if limiter.check("k", 120, at(t)).is_ok() {
                admitted.push(t);
            }
        }
        for (i, start) in admitted.iter().enumerate() {
            let within = admitted[i..]
                .iter()
                .take_while(|t| **t < start + 60.0)
                .count();
            assert!(
                within <= 120,
                "{within} admitted in the minute from {start}"
            );
        }
        // And the limit is served: 120 every 61 s.
        assert!(admitted.len() >= 120 * 4, "{}", admitted.len());
    }

    #[test]
    fn a_steady_client_just_under_the_limit_is_never_refused() {
        let limiter = LocalLimiter::default();
        // 118 a minute, for ten minutes.
        for i in 0..1180 {
            let t = f64::from(i) * 60.0 / 118.0;
            assert_eq!(limiter.check("k", 120, at(t)), Ok(()), "refused at {t}");
        }
    }

    #[test]
    fn retry_after_names_the_second_the_window_has_room_again() {
        let limiter = LocalLimiter::default();
        for _ in 0..100 {
            limiter.check("k", 120, at(0.5)).unwrap();
        }
        for _ in 0..20 {
            limiter.check("k", 120, at(10.2)).unwrap();
        }
        // Full: the first 100 leave at 61 s, so one more fits then.
        assert_eq!(limiter.check("k", 120, at(30.3)), Err(31));
        assert_eq!(limiter.check("k", 120, at(60.9)), Err(1));
        assert_eq!(limiter.check("k", 120, at(61.0)), Ok(()));
        assert_eq!(limiter.check("other", 120, at(30.3)), Ok(()), "per key");
    }

    /// A limiter whose store is never asked: these tests look at what it
    /// would send.
    async fn shared_limiter(dir: &tempfile::TempDir) -> SharedLimiter {
        let url = format!("sqlite://{}", dir.path().join("k.db").display());
        let store = crate::keystore::open_store(&url).await.unwrap();
        SharedLimiter::new(store, Duration::from_secs(1), Counter::default())
    }

    fn lease(now: Instant, valid_for: Duration, tokens: u32, unreported: u32) -> Lease {
        Lease {
            tokens,
            valid_until: now + valid_for,
            slot: 7,
            spent: unreported,
            granted: tokens + unreported,
            unreported,
            ..Lease::new(600, now)
        }
    }

    #[test]
    fn a_refill_is_sized_by_the_pace_its_lease_was_spent_at() {
        let now = Instant::now();
        // Two tokens granted half a second ago, one spent: about two a
        // second, so the next lease should last a while, not two requests.
        let mut l = lease(now, LEASE - Duration::from_millis(500), 1, 1);
        l.granted = 2;
        assert_eq!(
            l.next_want(now),
            10,
            "two a second for half a lease, capped at 600/60"
        );
        // A slow key: one spent in four seconds.
        let slow = Lease {
            granted: 2,
            ..lease(now, LEASE - Duration::from_secs(4), 1, 1)
        };
        assert_eq!(slow.next_want(now), 2);
        // A lease that ran out asks for at least twice what it spent.
        let out = lease(now, LEASE - Duration::from_secs(9), 0, 3);
        assert_eq!(out.next_want(now), 6);
        // An expired one, for what it spent.
        let old = lease(now, Duration::ZERO, 2, 3);
        assert_eq!(old.next_want(now + Duration::from_secs(1)), 3);
    }

    #[tokio::test]
    async fn the_report_carries_only_leases_that_ended() {
        let dir = tempfile::tempdir().unwrap();
        let limiter = shared_limiter(&dir).await;
        let now = Instant::now();
        {
            let mut leases = limiter.leases.lock().unwrap();
            // Live, half spent: its spends ride on its next claim.
            leases.insert("live".into(), lease(now, LEASE, 5, 5));
            // Expired with tokens left and spends: both go back.
            leases.insert(
                "ended".into(),
                lease(now - LEASE, Duration::from_millis(1), 3, 4),
            );
        }
        let report = limiter.collect(false);
        assert_eq!(
            report,
            vec![RateClaim {
                key_id: "ended".into(),
                limit: 600,
                want: 0,
                refund: 3,
                spent: 4,
                grant_slot: 7,
            }]
        );
        // The live lease's spends are still there for its next claim.
        limiter
            .leases
            .lock()
            .unwrap()
            .get_mut("live")
            .unwrap()
            .wanted = true;
        let claims = limiter.collect(true);
        assert_eq!(claims.len(), 1);
        assert_eq!((claims[0].refund, claims[0].spent), (5, 5));
    }

    #[test]
    fn idle_keys_are_forgotten() {
        let limiter = LocalLimiter::default();
        limiter.check("k", 120, at(0.0)).unwrap();
        limiter.forget_idle(at(30.0));
        assert_eq!(limiter.windows.lock().unwrap().len(), 1);
        limiter.forget_idle(at(61.0));
        assert!(limiter.windows.lock().unwrap().is_empty());
    }
}
