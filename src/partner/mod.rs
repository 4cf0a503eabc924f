//! The GitHub secret-scanning partner protocol: GitHub's public keys and
//! signature verification, the report payload and our answer, and the
//! response to a verified report (revoke, record, queue the email).
//!
//! It knows the key store only through [`KeyStore`](crate::keystore::KeyStore)
//! and knows nothing of HTTP servers; it never prints and never logs a token.

mod github_keys;
mod payload;
mod respond;
mod signature;
mod signing;

pub use github_keys::{GithubKeys, KeySource, KeysError, Lookup, PublicKeyEntry, RefreshOutcome};
pub use payload::{BodyError, ReportedToken, SOURCES, TokenLabel, parse_report};
pub use respond::{REPORTER, respond_to_report};
pub use signature::{
    SignatureError, SignedBy, decode_signature, read_signature_headers, verify_signature,
};
pub use signing::{SigningError, load_signing_key, public_key_pem, sign_body};

/// Header naming the GitHub key that signed a report.
pub const KEY_ID_HEADER: &str = "github-public-key-identifier";
/// Header carrying the base64 DER signature of the raw body.
pub const SIGNATURE_HEADER: &str = "github-public-key-signature";
