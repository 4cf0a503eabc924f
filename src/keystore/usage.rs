//! The usage log's records and what is read back from it: every key check
//! with its caller and outcome, summed by outcome and by caller network for
//! `keys activity` and for an incident's forensics.

use super::KeyHash;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use time::OffsetDateTime;

/// How a key check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UsageOutcome {
    Ok,
    /// Not a key of this store.
    Unknown,
    Revoked,
    Expired,
    Disabled,
    /// The caller's address is outside the key's allowlist.
    IpRefused,
    RateLimited,
}

impl UsageOutcome {
    pub const ALL: [UsageOutcome; 7] = [
        UsageOutcome::Ok,
        UsageOutcome::Unknown,
        UsageOutcome::Revoked,
        UsageOutcome::Expired,
        UsageOutcome::Disabled,
        UsageOutcome::IpRefused,
        UsageOutcome::RateLimited,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UsageOutcome::Ok => "ok",
            UsageOutcome::Unknown => "unknown",
            UsageOutcome::Revoked => "revoked",
            UsageOutcome::Expired => "expired",
            UsageOutcome::Disabled => "disabled",
            UsageOutcome::IpRefused => "ip-refused",
            UsageOutcome::RateLimited => "rate-limited",
        }
    }
}

impl fmt::Display for UsageOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for UsageOutcome {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        UsageOutcome::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| format!("unknown usage outcome {s:?}"))
    }
}

/// One key check.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRecord {
    /// Our key, when it is one.
    pub key_id: Option<String>,
    /// The SHA-256 of a key that is not ours.
    pub unknown_hash: Option<KeyHash>,
    pub at: OffsetDateTime,
    /// The caller (after `--trusted-proxy`); `None` when a proxy's chain
    /// could not be read.
    pub ip: Option<IpAddr>,
    pub outcome: UsageOutcome,
    /// One line, capped (see [`UsageRecord::user_agent_of`]).
    pub user_agent: Option<String>,
}

/// What the log keeps of the checks of one key (or unknown key), caller,
/// outcome and user agent within one second of the clock: the first of
/// them, how many there were and when the last one came. A busy key's own
/// service costs the store a row a second, not one a check.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRow {
    /// The first check; its `at` is the row's time.
    pub first: UsageRecord,
    /// The last check's time: `first.at` or later, in the same second.
    pub last: OffsetDateTime,
    /// How many checks the row stands for (at least one).
    pub requests: u32,
}

impl From<UsageRecord> for UsageRow {
    fn from(check: UsageRecord) -> Self {
        UsageRow {
            last: check.at,
            first: check,
            requests: 1,
        }
    }
}

/// The most characters of a user agent kept.
pub const MAX_USER_AGENT_CHARS: usize = 200;

impl UsageRecord {
    /// A caller's user agent as the log keeps it: hostile characters
    /// escaped, at most [`MAX_USER_AGENT_CHARS`].
    pub fn user_agent_of(raw: &[u8]) -> String {
        crate::untrusted::one_line(&String::from_utf8_lossy(raw), MAX_USER_AGENT_CHARS)
    }
}

/// The network a caller is counted in: its /24 (IPv4) or /48 (IPv6).
pub fn network_of(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => network_of(IpAddr::V4(v4)),
            None => {
                let s = v6.segments();
                let prefix = std::net::Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0);
                format!("{prefix}/48")
            }
        },
    }
}

/// Requests counted together (one outcome, or one network).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct UsageCount {
    /// The outcome or the network (`unknown` for callers without one).
    pub name: String,
    pub requests: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub first: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last: OffsetDateTime,
}

/// A key's checks since a time.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct UsageSummary {
    pub requests: i64,
    #[serde(with = "time::serde::rfc3339::option")]
    pub first: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last: Option<OffsetDateTime>,
    /// Most first.
    pub by_outcome: Vec<UsageCount>,
    /// Most first; at most [`MAX_NETWORKS`].
    pub by_network: Vec<UsageCount>,
    /// Networks in all (more than `by_network` holds when over the cap).
    pub networks: i64,
}

/// The most networks a summary lists.
pub const MAX_NETWORKS: i64 = 1000;

impl UsageSummary {
    /// Sums `by_outcome` into the totals.
    pub fn from_counts(
        by_outcome: Vec<UsageCount>,
        by_network: Vec<UsageCount>,
        networks: i64,
    ) -> Self {
        UsageSummary {
            requests: by_outcome.iter().map(|c| c.requests).sum(),
            first: by_outcome.iter().map(|c| c.first).min(),
            last: by_outcome.iter().map(|c| c.last).max(),
            by_outcome,
            by_network,
            networks,
        }
    }
}

/// A recorded leak report: the key revoked because of it, or seen again
/// after.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Incident {
    pub id: i64,
    pub key_id: String,
    /// `revoked` or `sighting`.
    pub kind: String,
    pub reporter: String,
    pub token_type: String,
    pub url: Option<String>,
    pub source: String,
    pub request_id: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub reported_at: OffsetDateTime,
}

/// A key's use as the alerts read it: by caller network over everything
/// kept, the requests of its trailing week (the last hour left out) and
/// of the last five minutes.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyHistory {
    /// Every network the key was used from, with its first hour.
    pub networks: Vec<NetworkHistory>,
    /// Requests in `[trailing_from, trailing_until)`.
    pub trailing_requests: i64,
    pub trailing_from: OffsetDateTime,
    pub trailing_until: OffsetDateTime,
    /// Requests in the five minutes before the read.
    pub recent_requests: i64,
}

/// The requests from one caller network.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NetworkHistory {
    pub network: String,
    /// The start of the first hour it was seen in.
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    pub requests: i64,
}

/// The start of the hour `at` is in.
pub fn hour_of(at: OffsetDateTime) -> OffsetDateTime {
    let s = at.unix_timestamp();
    OffsetDateTime::from_unix_timestamp(s - s.rem_euclid(3600)).unwrap_or(at)
}

/// What an early-warning alert found, kept with its outbox rows and
/// shown in its email and webhook. Never holds the key.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum AlertEvidence {
    NewNetwork(NewNetworkEvidence),
    Spike(SpikeEvidence),
}

/// A key used from a network it had never been used from.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NewNetworkEvidence {
    pub network: String,
    #[serde(with = "time::serde::rfc3339")]
    pub first_seen: OffsetDateTime,
    /// The networks it is usually used from, most first (at most 5).
    pub usual_networks: Vec<NetworkHistory>,
    /// Networks it was used from before this one.
    pub known_networks: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub history_since: OffsetDateTime,
}

/// A key used far more in five minutes than its trailing week's rate.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SpikeEvidence {
    pub recent_requests: i64,
    pub window_minutes: i64,
    pub usual_per_5_minutes: f64,
    #[serde(with = "time::serde::rfc3339")]
    pub usual_from: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub usual_until: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub detected_at: OffsetDateTime,
}

/// An alert to queue: to the key's owner, and to the deployment's webhook
/// when there is one; once per key, kind and `dedup`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAlert<'a> {
    pub key_id: &'a str,
    pub kind: &'a str,
    /// What makes it once: the network, the day; empty for once per key.
    pub dedup: &'a str,
    pub evidence: Option<&'a AlertEvidence>,
    pub at: OffsetDateTime,
    pub webhook: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callers_are_counted_by_their_slash_24_or_slash_48() {
        assert_eq!(
            network_of("203.0.113.77".parse().unwrap()),
            "203.0.113.0/24"
        );
        assert_eq!(
            network_of("2001:db8:abcd:12::1".parse().unwrap()),
            "2001:db8:abcd::/48"
        );
        assert_eq!(
            network_of("::ffff:198.51.100.9".parse().unwrap()),
            "198.51.100.0/24"
        );
    }

    #[test]
    fn user_agents_are_one_capped_line() {
        let ua = UsageRecord::user_agent_of(b"curl/8\r\n\x1b[2Jevil");
        assert!(!ua.contains(['\r', '\n', '\x1b']), "{ua}");
        let long = UsageRecord::user_agent_of("é".repeat(1000).as_bytes());
        assert!(
            long.chars().count() <= MAX_USER_AGENT_CHARS,
            "{}",
            long.chars().count()
        );
    }

    #[test]
    fn outcomes_round_trip_through_their_names() {
        for o in UsageOutcome::ALL {
            assert_eq!(o.as_str().parse::<UsageOutcome>(), Ok(o));
        }
    }
}
