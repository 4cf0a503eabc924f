//! ECDSA P-256 / SHA-256 over the raw body, as GitHub signs reports.
//! High-S signatures are valid: GitHub does not normalise them.

use super::PublicKeyEntry;
use base64::Engine;
use thiserror::Error;

/// Why a signature was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    #[error("signature header is not base64 of a DER ECDSA signature")]
    BadEncoding,
    #[error("unknown public key identifier")]
    UnknownKey,
    #[error("signature does not match the body")]
    BadSignature,
}

/// The two signature headers of a report, read: the key identifier
/// (trimmed, non-empty UTF-8) and the decoded DER signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedBy<'a> {
    pub key_id: &'a str,
    pub der: Vec<u8>,
}

/// Reads the key-identifier and signature headers (raw header bytes, as
/// received). A missing, empty or non-UTF-8 identifier is a missing
/// header; a signature that is not base64 DER is `BadEncoding`.
pub fn read_signature_headers<'a>(
    key_id: Option<&'a [u8]>,
    signature: Option<&[u8]>,
) -> Result<SignedBy<'a>, SignatureError> {
    let key_id = key_id
        .and_then(|v| std::str::from_utf8(v).ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or(SignatureError::MissingHeader(super::KEY_ID_HEADER))?;
    let signature = signature.ok_or(SignatureError::MissingHeader(super::SIGNATURE_HEADER))?;
    Ok(SignedBy {
        key_id,
        der: decode_signature(signature)?,
    })
}

/// Decodes the signature header: standard base64 (padding optional) of a
/// DER `SEQUENCE { r, s }`, checked for shape before any key is used.
pub fn decode_signature(header: &[u8]) -> Result<Vec<u8>, SignatureError> {
    let text = header.trim_ascii();
    let der = base64::engine::general_purpose::STANDARD
        .decode(text)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
        .map_err(|_| SignatureError::BadEncoding)?;
    p256::ecdsa::Signature::from_der(&der).map_err(|_| SignatureError::BadEncoding)?;
    Ok(der)
}

/// Verifies `der` (from [`decode_signature`]) over `body` with `key`.
pub fn verify_signature(
    key: &PublicKeyEntry,
    der: &[u8],
    body: &[u8],
) -> Result<(), SignatureError> {
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, &key.point)
        .verify(body, der)
        .map_err(|_| SignatureError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    // GitHub's documented test vectors (../shared/partner-protocol.md).
    const DOCS_KEY: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEsz9ugWDj5jK5ELBK42ynytbo38gP\nHzZFI03Exwz8Lh/tCfL3YxwMdLjB+bMznsanlhK0RwcGP3IDb34kQDIo3Q==\n-----END PUBLIC KEY-----\n";
    const DOCS_BODY: &str =
        r#"[{"token":"some_token","type":"some_type","url":"some_url","source":"some_source"}]"#;
    const DOCS_SIG: &str = "MEUCIFLZzeK++IhS+y276SRk2Pe5LfDrfvTXu6iwKKcFGCrvAiEAhHN2kDOhy2I6eGkOFmxNkOJ+L2y8oQ9A2T9GGJo6WJY=";
    const PROD_KEY: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEYAGMWO8XgCamYKMJS6jc/qgvSlAd\nAjPuDPRcXU22YxgBrz+zoN19MzuRyW87qEt9/AmtoNP5GrobzUvQSyJFVw==\n-----END PUBLIC KEY-----\n";
    const PROD_BODY: &str = r#"[{"source":"commit","token":"some_token","type":"some_type","url":"https://example.com/base-repo-url/"}]"#;
    const PROD_SIG: &str = "MEQCIQDaMKqrGnE27S0kgMrEK0eYBmyG0LeZismAEz/BgZyt7AIfXt9fErtRS4XaeSt/AO1RtBY66YcAdjxji410VQV4xg==";

    fn entry(pem: &str) -> PublicKeyEntry {
        PublicKeyEntry::from_pem(pem, true).unwrap()
    }

    #[test]
    fn githubs_published_test_vectors_verify() {
        for (pem, body, sig) in [
            (DOCS_KEY, DOCS_BODY, DOCS_SIG),
            (PROD_KEY, PROD_BODY, PROD_SIG),
        ] {
            let der = decode_signature(sig.as_bytes()).unwrap();
            assert_eq!(verify_signature(&entry(pem), &der, body.as_bytes()), Ok(()));
        }
    }

    #[test]
    fn the_docs_vector_is_high_s_and_still_verifies() {
        let der = decode_signature(DOCS_SIG.as_bytes()).unwrap();
        let sig = p256::ecdsa::Signature::from_der(&der).unwrap();
        assert!(sig.normalize_s().is_some(), "the vector is high-S");
        assert_eq!(
            verify_signature(&entry(DOCS_KEY), &der, DOCS_BODY.as_bytes()),
            Ok(())
        );
    }

    #[test]
    fn any_change_to_the_body_or_key_fails() {
        let der = decode_signature(DOCS_SIG.as_bytes()).unwrap();
        let with_newline = format!("{DOCS_BODY}\n");
        assert_eq!(
            verify_signature(&entry(DOCS_KEY), &der, with_newline.as_bytes()),
            Err(SignatureError::BadSignature)
        );
        assert_eq!(
            verify_signature(&entry(PROD_KEY), &der, DOCS_BODY.as_bytes()),
            Err(SignatureError::BadSignature)
        );
    }

    #[test]
    fn undecodable_signatures_are_bad_encoding() {
        for bad in [&b"not base64!"[..], b"", b"AAAA", b"MEUCIFLZ"] {
            assert_eq!(
                decode_signature(bad),
                Err(SignatureError::BadEncoding),
                "{bad:?}"
            );
        }
    }
}
