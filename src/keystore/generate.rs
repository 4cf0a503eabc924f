//! Key generation and hashing: 32 bytes from the OS CSPRNG become
//! `sk-or-v1-` + 64 lowercase hex; the store identifies a key by the
//! SHA-256 of the whole key.

use super::StoreError;
use crate::secret::Secret;
use sha2::{Digest, Sha256};
use std::fmt;

/// The prefix of every key this store issues.
pub const KEY_PREFIX: &str = "sk-or-v1-";

/// SHA-256 of a whole key: the only form in which the store holds it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyHash(pub [u8; 32]);

impl KeyHash {
    /// Hashes the whole key.
    pub fn of(key: &[u8]) -> Self {
        KeyHash(Sha256::digest(key).into())
    }

    /// Parses 64 hex digits (either case).
    pub fn from_hex(text: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut out).ok()?;
        Some(KeyHash(out))
    }

    /// Lowercase hex, as stored and as GitHub's feedback names a token.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyHash({})", self.to_hex())
    }
}

impl fmt::Display for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A new key: `sk-or-v1-` + 64 lowercase hex from 32 CSPRNG bytes.
pub fn generate_key() -> Result<Secret, StoreError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| StoreError::Random(e.to_string()))?;
    let mut key = String::with_capacity(KEY_PREFIX.len() + 64);
    key.push_str(KEY_PREFIX);
    key.push_str(&hex::encode(bytes));
    Ok(Secret::new(key))
}

/// True when `token` has the shape of an OpenRouter key: `sk-or-v<digits>-`
/// and exactly 64 lowercase hex digits.
pub fn looks_like_key(token: &[u8]) -> bool {
    let Some(rest) = token.strip_prefix(b"sk-or-v") else {
        return false;
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 3 {
        return false;
    }
    let Some(body) = rest[digits..].strip_prefix(b"-") else {
        return false;
    };
    body.len() == 64 && body.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_openrouters_shape_and_differ() {
        let a = generate_key().unwrap();
        let b = generate_key().unwrap();
        assert!(looks_like_key(a.expose()), "{a:?}");
        assert_eq!(a.len(), 73);
        assert_ne!(a, b);
    }

    #[test]
    fn key_shape_is_exact() {
        let hex = "0e6f44a47a05f1dad2ad7e88c4c1d6b77688157716fb1a5271146f7464951c96";
        assert!(looks_like_key(format!("sk-or-v1-{hex}").as_bytes()));
        assert!(looks_like_key(format!("sk-or-v12-{hex}").as_bytes()));
        assert!(!looks_like_key(
            format!("sk-or-v1-{}", &hex[1..]).as_bytes()
        ));
        assert!(!looks_like_key(format!("sk-or-v1-{hex}0").as_bytes()));
        assert!(!looks_like_key(
            format!("sk-or-v1-{}", hex.to_uppercase()).as_bytes()
        ));
        assert!(!looks_like_key(format!("sk-or-v-{hex}").as_bytes()));
        assert!(!looks_like_key(b""));
    }

    #[test]
    fn hash_round_trips_through_hex() {
        let h = KeyHash::of(b"abc");
        assert_eq!(
            h.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(KeyHash::from_hex(&h.to_hex().to_uppercase()), Some(h));
        assert_eq!(KeyHash::from_hex("abc"), None);
    }
}
