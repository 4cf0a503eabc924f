//! keywarden finds leaked OpenRouter API keys and responds to the leak.
//!
//! The scanner half: `rules → matcher → scan ← sources`, `scan → report`.
//! The responder half: `keystore ← partner ← server → notify`, built with
//! the `responder` feature.

pub mod hook;
#[cfg(feature = "responder")]
pub mod keystore;
pub mod matcher;
#[cfg(feature = "responder")]
pub mod notify;
#[cfg(feature = "responder")]
pub mod partner;
pub mod provenance;
pub mod report;
pub mod rules;
pub mod scan;
pub mod secret;
#[cfg(feature = "responder")]
pub mod server;
pub mod sources;
pub mod untrusted;
pub mod verify;
