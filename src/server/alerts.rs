//! Early warnings read off the usage log: a key used from a network it has
//! never been used from, once it has a settled history, and a spike — more
//! requests in five minutes than K times its trailing week's rate. The
//! usage log's writer hands each written batch to a [`Watcher`], off the
//! request path; alerts go through the outbox, once per key and network
//! (new network) or per key and day (spike), whichever replica sees it.

use super::metrics::UsageMetrics;
use crate::keystore::{
    AlertEvidence, KeyHistory, KeyStore, NEW_NETWORK, NetworkHistory, NewAlert, NewNetworkEvidence,
    SpikeEvidence, USAGE_SPIKE, UsageRow, hour_of, network_of,
};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// Thresholds of the alerts, and where they go besides the owner.
#[derive(Debug, Clone)]
pub struct AlertConfig {
    /// A key's history is settled once its first use is this old...
    pub settled_after: Duration,
    /// ...and it holds this many requests.
    pub settled_requests: i64,
    /// A spike: more than this many times the trailing rate...
    pub spike_factor: f64,
    /// ...and at least this many requests in five minutes.
    pub spike_min: i64,
    /// The deployment's webhook, besides the owner's email.
    pub webhook: Option<String>,
}

impl Default for AlertConfig {
    fn default() -> Self {
        AlertConfig {
            settled_after: Duration::from_secs(7 * 24 * 3600),
            settled_requests: 100,
            spike_factor: 10.0,
            spike_min: 100,
            webhook: None,
        }
    }
}

/// Keys looked at per written batch, at most (the rest wait for the next).
const KEYS_PER_BATCH: usize = 64;
/// Key histories read from the store per second, at most, by one replica:
/// the alerts never take more than a small share of the store from key
/// checks (after a restart every key is new to the replica: 2,000 busy
/// keys are then looked at over about a minute).
const READS_PER_SECOND: u32 = 32;
/// A key's spike is looked at this often, at most, by one replica.
const SPIKE_EVERY: Duration = Duration::from_secs(5);
/// (key, network) pairs remembered as looked at; forgotten all at once
/// past this (asked again then, the outbox keeps alerts to one).
const SEEN_CAP: usize = 200_000;
/// How many usual networks an alert lists.
const USUAL_SHOWN: usize = 5;

/// Networks of `history` that are new as of `now`: first seen within the
/// last hour, when the rest of the key's history is settled.
pub fn new_networks(
    history: &KeyHistory,
    candidates: &HashMap<String, OffsetDateTime>,
    now: OffsetDateTime,
    config: &AlertConfig,
) -> Vec<NewNetworkEvidence> {
    let recent = hour_of(now) - time::Duration::hours(1);
    let (fresh, established): (Vec<&NetworkHistory>, Vec<&NetworkHistory>) = history
        .networks
        .iter()
        .filter(|n| n.network != "unknown")
        .partition(|n| n.since >= recent);
    let Some(history_since) = established.iter().map(|n| n.since).min() else {
        return Vec::new();
    };
    let requests: i64 = established.iter().map(|n| n.requests).sum();
    let settled =
        history_since <= now - config.settled_after && requests >= config.settled_requests;
    if !settled {
        return Vec::new();
    }
    let mut usual: Vec<NetworkHistory> = established.iter().map(|n| (*n).clone()).collect();
    usual.sort_by(|a, b| b.requests.cmp(&a.requests).then(a.network.cmp(&b.network)));
    usual.truncate(USUAL_SHOWN);
    fresh
        .into_iter()
        .filter_map(|n| {
            let first_seen = *candidates.get(&n.network)?;
            Some(NewNetworkEvidence {
                network: n.network.clone(),
                first_seen,
                usual_networks: usual.clone(),
                known_networks: established.len() as i64,
                history_since,
            })
        })
        .collect()
}

/// The key's usual requests per five minutes over its trailing week, when
/// its history is settled.
pub fn usual_rate(history: &KeyHistory, now: OffsetDateTime, config: &AlertConfig) -> Option<f64> {
    let first = history.networks.iter().map(|n| n.since).min()?;
    let total: i64 = history.networks.iter().map(|n| n.requests).sum();
    if first > now - config.settled_after || total < config.settled_requests {
        return None;
    }
    let from = first.max(history.trailing_from);
    let span = (history.trailing_until - from).whole_seconds();
    (span > 0).then(|| history.trailing_requests as f64 / (span as f64 / 300.0))
}

/// A spike as of `now`, if there is one: the last five minutes over
/// `spike_factor` times the trailing week's rate per five minutes, the key
/// having a settled history.
pub fn spike(
    history: &KeyHistory,
    now: OffsetDateTime,
    config: &AlertConfig,
) -> Option<SpikeEvidence> {
    let usual = usual_rate(history, now, config)?;
    if history.recent_requests < config.spike_min {
        return None;
    }
    let first = history.networks.iter().map(|n| n.since).min()?;
    let from = first.max(history.trailing_from);
    (history.recent_requests as f64 > config.spike_factor * usual).then(|| SpikeEvidence {
        recent_requests: history.recent_requests,
        window_minutes: 5,
        usual_per_5_minutes: (usual * 1000.0).round() / 1000.0,
        usual_from: from,
        usual_until: history.trailing_until,
        detected_at: now,
    })
}

/// What a replica knows of a key between reads of its history: its usual
/// rate (`None`: no settled history) as of a read, and the requests this
/// replica logged in the last five minutes, by minute.
struct Profile {
    usual: Option<f64>,
    read_at: Instant,
    minutes: [(i64, u32); 5],
    /// When its spike was last looked at.
    spike_at: Option<Instant>,
}

impl Profile {
    fn add(&mut self, at: OffsetDateTime, requests: u32) {
        let minute = at.unix_timestamp().div_euclid(60);
        let cell = &mut self.minutes[minute.rem_euclid(5) as usize];
        if cell.0 != minute {
            *cell = (minute, 0);
        }
        cell.1 = cell.1.saturating_add(requests);
    }

    fn recent(&self, now: OffsetDateTime) -> i64 {
        let minute = now.unix_timestamp().div_euclid(60);
        self.minutes
            .iter()
            .filter(|(m, _)| minute.saturating_sub(*m) < 5)
            .map(|(_, n)| i64::from(*n))
            .sum()
    }
}

/// How long a key's usual rate is trusted before its history is read again.
const PROFILE_FOR: Duration = Duration::from_secs(3600);
/// The most replicas the spike gate allows for: a key is looked at when
/// this replica's own share of its last five minutes, times this, could be
/// a spike.
const REPLICAS_ASSUMED: i64 = 4;

/// Looks at each written batch of the usage log for new networks and
/// spikes. One per replica, in its usage-log writer, which also calls
/// [`Watcher::run_due`] every second: a key whose spike was looked at less
/// than [`SPIKE_EVERY`] ago waits, and is looked at when due even if no
/// more records of it come.
pub struct Watcher {
    store: Arc<dyn KeyStore>,
    config: AlertConfig,
    metrics: UsageMetrics,
    /// (key, network) pairs looked at.
    seen: HashSet<(String, String)>,
    /// Keys with records not looked at yet: their networks not seen
    /// before, with the first time in the batch.
    pending: HashMap<String, HashMap<String, OffsetDateTime>>,
    /// Each key's usual rate and this replica's recent count of it: the
    /// store is asked about a spike only when this replica's own count
    /// could be one.
    profiles: HashMap<String, Profile>,
    /// Reads this second: (the second, how many).
    reads: (u64, u32),
}

impl Watcher {
    pub fn new(store: Arc<dyn KeyStore>, config: AlertConfig, metrics: UsageMetrics) -> Self {
        Watcher {
            store,
            config,
            metrics,
            seen: HashSet::new(),
            pending: HashMap::new(),
            profiles: HashMap::new(),
            reads: (0, 0),
        }
    }

    /// Takes one read from this second's budget; false when it is spent.
    fn may_read(&mut self) -> bool {
        let second = OffsetDateTime::now_utc().unix_timestamp().unsigned_abs();
        if self.reads.0 != second {
            self.reads = (second, 0);
        }
        if self.reads.1 >= READS_PER_SECOND {
            return false;
        }
        self.reads.1 += 1;
        true
    }

    /// Whether key `id`'s spike was last looked at [`SPIKE_EVERY`] ago or
    /// more (or never).
    fn spike_due(&self, id: &str, clock: Instant) -> bool {
        self.profiles
            .get(id)
            .and_then(|p| p.spike_at)
            .is_none_or(|at| clock.duration_since(at) >= SPIKE_EVERY)
    }

    fn spike_looked_at(&mut self, id: &str, clock: Instant) {
        if let Some(p) = self.profiles.get_mut(id) {
            p.spike_at = Some(clock);
        }
    }

    /// Whether a spike of key `id` is worth asking the store about.
    fn spike_possible(&self, id: &str, now: OffsetDateTime) -> bool {
        let Some(p) = self.profiles.get(id) else {
            return true;
        };
        if p.read_at.elapsed() >= PROFILE_FOR {
            return true;
        }
        let Some(usual) = p.usual else {
            return false;
        };
        let could_be = p.recent(now) * REPLICAS_ASSUMED;
        could_be >= self.config.spike_min && could_be as f64 > self.config.spike_factor * usual
    }

    /// Takes note of the keys of a batch just written, and looks at what
    /// is due.
    pub async fn after_batch(&mut self, batch: &[UsageRow]) {
        if self.seen.len() > SEEN_CAP {
            self.seen.clear();
        }
        if self.profiles.len() > SEEN_CAP {
            self.profiles.clear();
        }
        for row in batch {
            let r = &row.first;
            let Some(id) = r.key_id.as_deref() else {
                continue;
            };
            match self.profiles.get_mut(id) {
                Some(p) => p.add(r.at, row.requests),
                None => {
                    let mut p = Profile {
                        usual: None,
                        // Never read: the first look reads it.
                        read_at: Instant::now() - PROFILE_FOR,
                        minutes: [(i64::MIN, 0); 5],
                        spike_at: None,
                    };
                    p.add(r.at, row.requests);
                    self.profiles.insert(id.to_string(), p);
                }
            }
            if self.pending.len() >= SEEN_CAP && !self.pending.contains_key(id) {
                continue;
            }
            let networks = self.pending.entry(id.to_string()).or_default();
            if let Some(ip) = r.ip {
                let network = network_of(ip);
                if !self.seen.contains(&(id.to_string(), network.clone())) {
                    let first = networks.entry(network).or_insert(r.at);
                    *first = (*first).min(r.at);
                }
            }
        }
        self.run_due().await;
    }

    /// Looks at pending keys: new networks at once, spikes when due; at
    /// most [`KEYS_PER_BATCH`] keys a call.
    pub async fn run_due(&mut self) {
        let now = OffsetDateTime::now_utc();
        let clock = Instant::now();
        let due: Vec<String> = self
            .pending
            .iter()
            .filter(|(id, networks)| !networks.is_empty() || self.spike_due(id, clock))
            .map(|(id, _)| id.clone())
            .take(KEYS_PER_BATCH)
            .collect();
        for id in due {
            let spike_due = self.spike_due(&id, clock);
            let has_candidates = self.pending.get(&id).is_some_and(|n| !n.is_empty());
            if spike_due && !has_candidates && !self.spike_possible(&id, now) {
                // Nothing this replica saw could be a spike: no read.
                self.spike_looked_at(&id, clock);
                self.pending.remove(&id);
                continue;
            }
            if !self.may_read() {
                // Looked at in a later second; what it saw stays pending.
                break;
            }
            let history = match self.store.key_history(&id, now).await {
                Ok(h) => h,
                Err(e) => {
                    tracing::warn!(key = id, error = %e, "usage alerts: key history not read");
                    continue;
                }
            };
            let candidates = self.pending.remove(&id).unwrap_or_default();
            let mut done = true;
            for found in new_networks(&history, &candidates, now, &self.config) {
                let dedup = found.network.clone();
                let evidence = AlertEvidence::NewNetwork(found);
                done &= self.queue(&id, NEW_NETWORK, &dedup, &evidence, now).await;
            }
            if done {
                for network in candidates.into_keys() {
                    self.seen.insert((id.clone(), network));
                }
            } else {
                self.pending.insert(id.clone(), candidates);
            }
            if let Some(p) = self.profiles.get_mut(&id) {
                p.usual = usual_rate(&history, now, &self.config);
                p.read_at = clock;
            }
            if spike_due {
                self.spike_looked_at(&id, clock);
                if let Some(found) = spike(&history, now, &self.config) {
                    let day = now.date().to_string();
                    let evidence = AlertEvidence::Spike(found);
                    self.queue(&id, USAGE_SPIKE, &day, &evidence, now).await;
                }
            } else {
                // Looked at for its networks only: its spike is still due.
                self.pending.entry(id).or_default();
            }
        }
    }

    /// Queues one alert; false when the store refused (looked at again).
    async fn queue(
        &self,
        id: &str,
        kind: &str,
        dedup: &str,
        evidence: &AlertEvidence,
        now: OffsetDateTime,
    ) -> bool {
        let alert = NewAlert {
            key_id: id,
            kind,
            dedup,
            evidence: Some(evidence),
            at: now,
            webhook: self.config.webhook.as_deref(),
        };
        let metric = if kind == NEW_NETWORK {
            "new_network"
        } else {
            "usage_spike"
        };
        match self.store.queue_alert(&alert).await {
            Ok(true) => {
                self.metrics.alert(metric);
                tracing::info!(
                    key = id,
                    kind,
                    what = dedup,
                    "usage alert queued for the owner"
                );
                true
            }
            Ok(false) => true,
            Err(e) => {
                tracing::warn!(key = id, kind, error = %e, "usage alert not queued");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(hours_ago: i64) -> OffsetDateTime {
        hour_of(OffsetDateTime::now_utc()) - time::Duration::hours(hours_ago)
    }

    fn history(networks: &[(&str, i64, i64)], trailing: i64, recent: i64) -> KeyHistory {
        let now = OffsetDateTime::now_utc();
        KeyHistory {
            networks: networks
                .iter()
                .map(|(n, hours_ago, requests)| NetworkHistory {
                    network: n.to_string(),
                    since: at(*hours_ago),
                    requests: *requests,
                })
                .collect(),
            trailing_requests: trailing,
            trailing_from: hour_of(now) - time::Duration::days(7),
            trailing_until: hour_of(now) - time::Duration::hours(1),
            recent_requests: recent,
        }
    }

    fn candidates(names: &[&str]) -> HashMap<String, OffsetDateTime> {
        names
            .iter()
            .map(|n| (n.to_string(), OffsetDateTime::now_utc()))
            .collect()
    }

    #[test]
    fn a_network_is_new_only_against_a_settled_history() {
        let config = AlertConfig::default();
        let now = OffsetDateTime::now_utc();
        let settled = history(
            &[("192.0.2.0/24", 200, 500), ("203.0.113.0/24", 0, 3)],
            0,
            3,
        );
        let found = new_networks(&settled, &candidates(&["203.0.113.0/24"]), now, &config);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].network, "203.0.113.0/24");
        assert_eq!(found[0].usual_networks[0].network, "192.0.2.0/24");
        // Not a candidate of this batch: not alerted here.
        assert!(new_networks(&settled, &candidates(&[]), now, &config).is_empty());
        // Too young, or too little used.
        let young = history(
            &[("192.0.2.0/24", 100, 500), ("203.0.113.0/24", 0, 3)],
            0,
            3,
        );
        assert!(new_networks(&young, &candidates(&["203.0.113.0/24"]), now, &config).is_empty());
        let quiet = history(&[("192.0.2.0/24", 200, 20), ("203.0.113.0/24", 0, 3)], 0, 3);
        assert!(new_networks(&quiet, &candidates(&["203.0.113.0/24"]), now, &config).is_empty());
        // A network first seen days ago is not new.
        let old = history(
            &[("192.0.2.0/24", 200, 500), ("203.0.113.0/24", 30, 3)],
            0,
            3,
        );
        assert!(new_networks(&old, &candidates(&["203.0.113.0/24"]), now, &config).is_empty());
        // Callers without an address are never a network.
        let unknown = history(&[("192.0.2.0/24", 200, 500), ("unknown", 0, 3)], 0, 3);
        assert!(new_networks(&unknown, &candidates(&["unknown"]), now, &config).is_empty());
    }

    #[test]
    fn a_profile_counts_the_last_five_minutes_only() {
        let mut p = Profile {
            usual: None,
            read_at: Instant::now(),
            minutes: [(i64::MIN, 0); 5],
            spike_at: None,
        };
        let now = OffsetDateTime::now_utc();
        assert_eq!(p.recent(now), 0);
        p.add(now - time::Duration::minutes(7), 1);
        p.add(now - time::Duration::minutes(2), 1);
        p.add(now, 1);
        p.add(now, 1);
        assert_eq!(p.recent(now), 3);
        assert_eq!(p.recent(now + time::Duration::minutes(10)), 0);
    }

    #[test]
    fn a_spike_is_k_times_the_trailing_rate_and_at_least_the_minimum() {
        let config = AlertConfig::default();
        let now = OffsetDateTime::now_utc();
        // 167 hours at 12 an hour: one per 5 minutes.
        let steady = |recent| history(&[("192.0.2.0/24", 168, 2004)], 2004, recent);
        let found = spike(&steady(150), now, &config).expect("150 over 1 per 5 min");
        assert!((found.usual_per_5_minutes - 1.0).abs() < 0.01, "{found:?}");
        assert!(
            spike(&steady(99), now, &config).is_none(),
            "under the minimum"
        );
        let busy = |recent| history(&[("192.0.2.0/24", 168, 200_400)], 200_400, recent);
        assert!(
            spike(&busy(900), now, &config).is_none(),
            "under 10× of 100"
        );
        assert!(spike(&busy(1001), now, &config).is_some());
        // A day-old key has no usual rate yet.
        let young = history(&[("192.0.2.0/24", 24, 2004)], 2004, 500);
        assert!(spike(&young, now, &config).is_none());
    }
}
