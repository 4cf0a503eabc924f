//! Signing reports the way GitHub does, for rehearsals against a staging
//! deployment (`keywarden partner sign|send`) and for tests.

use base64::Engine;
use p256::ecdsa::{Signature, SigningKey, signature::Signer};
use p256::pkcs8::{DecodePrivateKey, EncodePublicKey, LineEnding};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum SigningError {
    #[error("not a P-256 private key in PEM (PKCS#8 `PRIVATE KEY` or SEC1 `EC PRIVATE KEY`)")]
    BadKey,
}

/// Reads a P-256 private key from PKCS#8 or SEC1 PEM.
pub fn load_signing_key(pem: &str) -> Result<SigningKey, SigningError> {
    if let Ok(key) = SigningKey::from_pkcs8_pem(pem) {
        return Ok(key);
    }
    p256::SecretKey::from_sec1_pem(pem)
        .map(SigningKey::from)
        .map_err(|_| SigningError::BadKey)
}

/// The header value GitHub would send: base64 of the DER signature of
/// `body`, exactly as given.
pub fn sign_body(key: &SigningKey, body: &[u8]) -> String {
    let signature: Signature = key.sign(body);
    base64::engine::general_purpose::STANDARD.encode(signature.to_der().as_bytes())
}

/// The SubjectPublicKeyInfo PEM of `key`'s public half, as GitHub lists it.
pub fn public_key_pem(key: &SigningKey) -> String {
    key.verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap_or_default()
}
