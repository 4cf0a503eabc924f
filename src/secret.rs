//! Secrets held in memory and their redacted display.
//!
//! A [`Secret`] is the only way a key travels between modules. Its `Debug`
//! and `Display` show the redacted label, so a stray `{:?}` in a log or a
//! report cannot leak it; the raw bytes are reached only through
//! [`Secret::expose`], which reports call when `--show-secrets` is given.
//! This module never prints and never decides what is a secret.

use sha2::{Digest, Sha256};
use std::fmt;

/// How many characters of the body stay visible at each end of a label.
const VISIBLE: usize = 3;
/// A prefix (`sk-or-v1-`, `ghp_`) is kept whole only when it ends within
/// this many leading bytes; longer "prefixes" are part of the body.
const MAX_PREFIX: usize = 16;
/// Bodies shorter than this are masked entirely: showing 6 of 10 characters
/// would give most of a short secret away.
const MIN_BODY_FOR_ENDS: usize = 12;

/// Secret bytes whose formatting never reveals them.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps the bytes of a secret.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Secret(bytes.into())
    }

    /// The raw bytes; callers must only print them when the user asked to.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The label shown instead of the secret, e.g. `sk-or-v1-3fa...9c0`.
    pub fn redacted(&self) -> String {
        redact(&self.0)
    }

    /// Lowercase hex SHA-256 of the secret: what the key store and GitHub's
    /// partner feedback identify a token by.
    pub fn sha256_hex(&self) -> String {
        sha256_hex(&self.0)
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for an empty secret (never produced by a rule).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({})", self.redacted())
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Lowercase hex SHA-256 of arbitrary bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Redacts a secret to OpenRouter's label format: a leading prefix that
/// ends in `-` or `_` is kept (`sk-or-v1-`, `ghp_`), then the first three
/// and last three characters of the rest around `...`. Short bodies are
/// masked whole.
pub fn redact(secret: &[u8]) -> String {
    let text = String::from_utf8_lossy(secret);
    let prefix_len = text
        .char_indices()
        .take_while(|(i, _)| *i < MAX_PREFIX)
        .filter(|(_, c)| *c == '-' || *c == '_')
        .map(|(i, _)| i + 1)
        .last()
        .unwrap_or(0);
    let (prefix, body) = text.split_at(prefix_len);
    let chars: Vec<char> = body.chars().collect();
    if chars.len() < MIN_BODY_FOR_ENDS {
        return format!("{prefix}{}", "*".repeat(chars.len().clamp(3, 8)));
    }
    let head: String = chars[..VISIBLE].iter().collect();
    let tail: String = chars[chars.len() - VISIBLE..].iter().collect();
    format!("{prefix}{head}...{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC_KEY: &str =
        "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";

    #[test]
    fn openrouter_key_redacts_to_openrouters_own_label() {
        assert_eq!(redact(DOC_KEY.as_bytes()), "sk-or-v1-0e6...c96");
    }

    #[test]
    fn debug_and_display_never_show_the_whole_key() {
        let s = Secret::new(DOC_KEY);
        assert!(!format!("{s:?}").contains(&DOC_KEY[9..]));
        assert!(!format!("{s}").contains(&DOC_KEY[9..]));
        assert_eq!(s.expose(), DOC_KEY.as_bytes());
    }

    #[test]
    fn prefixless_secret_keeps_three_characters_at_each_end() {
        assert_eq!(redact(b"AKIAIOSFODNN7EXAMPLE"), "AKI...PLE");
    }

    #[test]
    fn short_secret_is_masked_whole() {
        assert_eq!(redact(b"hunter2"), "*******");
        assert_eq!(redact(b"tok_abc"), "tok_***");
    }

    #[test]
    fn sha256_is_lowercase_hex_of_the_whole_secret() {
        assert_eq!(sha256_hex(b"").len(), 64);
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
