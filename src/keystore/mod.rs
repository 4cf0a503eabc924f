//! The key store: which API keys exist, who owns them and whether they
//! still work.
//!
//! It holds the key model ([`KeyRecord`], [`KeyType`]), key generation and
//! hashing, and the [`KeyStore`] trait with its SQLite and PostgreSQL
//! backends. A whole key exists only in the [`Secret`](crate::secret::Secret)
//! returned once by [`create_key`]; the store keeps its SHA-256 and label.
//! This module never prints, never serves HTTP and never knows about GitHub.

mod error;
mod generate;
mod lifecycle;
mod model;
mod sql;
mod store;
mod usage;

pub use error::StoreError;
pub use generate::{KeyHash, generate_key, looks_like_key};
pub use lifecycle::{
    ImportOutcome, ImportRow, Rotation, create_key, import_keys, parse_cidr, parse_import,
    rotate_key,
};
pub use model::{
    KeyRecord, KeySpec, KeyState, KeyType, LimitReset, MAX_TEXT_CHARS, SpecError, WindowUsage,
    check_text, is_plain_address, rfc3339,
};
pub use store::{
    AttemptOutcome, KeyStore, KeyUpdate, LeakOutcome, LeakReport, ListFilter, NEW_NETWORK,
    OutboxEmail, OutboxRow, PageFilter, RateClaim, RateGrant, Revocation, STILL_IN_USE,
    USAGE_SPIKE, UpdateOutcome, open_existing_store, open_store, redact_url,
};
pub use usage::{
    AlertEvidence, Incident, KeyHistory, MAX_NETWORKS, MAX_USER_AGENT_CHARS, NetworkHistory,
    NewAlert, NewNetworkEvidence, SpikeEvidence, UsageCount, UsageOutcome, UsageRecord, UsageRow,
    UsageSummary, hour_of, network_of,
};
