//! keywarden finds leaked OpenRouter API keys and responds to the leak.
//!
//! The scanner half: `rules → matcher → scan ← sources`, `scan → report`.
//! The responder half: `keystore ← partner ← server → notify`.

pub mod hook;
pub mod keystore;
pub mod matcher;
pub mod notify;
pub mod partner;
pub mod report;
pub mod rules;
pub mod scan;
pub mod secret;
pub mod server;
pub mod sources;
pub mod untrusted;
pub mod verify;
