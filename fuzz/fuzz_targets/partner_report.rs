//! The partner endpoint's input: the two signature headers and the raw
//! body. Headers are read and decoded, the signature checked against a
//! fixed test key, and the body parsed, as the route does.
//!
//! Checks: nothing panics; a fuzzed signature never verifies; a body we
//! sign ourselves always verifies and stops verifying when one byte
//! changes; a parsed report only holds sources GitHub names and trimmed,
//! non-empty URLs.
#![no_main]

use arbitrary::Arbitrary;
use base64::Engine;
use keywarden::partner::{
    PublicKeyEntry, SOURCES, SignatureError, parse_report, read_signature_headers, sign_body,
    verify_signature,
};
use libfuzzer_sys::fuzz_target;
use p256::ecdsa::SigningKey;
use std::sync::OnceLock;

#[derive(Arbitrary, Debug)]
struct Report<'a> {
    key_id: Option<&'a [u8]>,
    signature: Option<&'a [u8]>,
    /// Sign the body with the test key instead of using `signature`.
    sign_it: bool,
    flip: usize,
    body: &'a [u8],
}

fn keys() -> &'static (SigningKey, PublicKeyEntry) {
    static KEYS: OnceLock<(SigningKey, PublicKeyEntry)> = OnceLock::new();
    KEYS.get_or_init(|| {
        // A fixed scalar: a test key, never a real one.
        let signing = SigningKey::from_slice(&[7u8; 32]).expect("valid scalar");
        let point = signing.verifying_key().to_encoded_point(false);
        let entry = PublicKeyEntry {
            point: point.as_bytes().to_vec(),
            is_current: true,
        };
        (signing, entry)
    })
}

fuzz_target!(|input: Report<'_>| {
    let (signing, public) = keys();
    let own;
    let signature = if input.sign_it {
        own = sign_body(signing, input.body);
        Some(own.as_bytes())
    } else {
        input.signature
    };
    match read_signature_headers(input.key_id, signature) {
        Ok(signed) => {
            assert!(!signed.key_id.is_empty());
            assert_eq!(signed.key_id, signed.key_id.trim());
            let verdict = verify_signature(public, &signed.der, input.body);
            if input.sign_it {
                assert_eq!(verdict, Ok(()), "our own signature must verify");
                if !input.body.is_empty() {
                    let mut changed = input.body.to_vec();
                    let at = input.flip % changed.len();
                    changed[at] ^= 0x01;
                    assert_eq!(
                        verify_signature(public, &signed.der, &changed),
                        Err(SignatureError::BadSignature),
                        "a changed body must not verify"
                    );
                }
            } else {
                assert_eq!(
                    verdict,
                    Err(SignatureError::BadSignature),
                    "forged signature verified"
                );
            }
        }
        Err(SignatureError::MissingHeader(_)) => {
            assert!(
                input.key_id.is_none_or(|k| std::str::from_utf8(k)
                    .is_ok_and(|s| s.trim().is_empty())
                    || std::str::from_utf8(k).is_err())
                    || signature.is_none()
            );
        }
        Err(SignatureError::BadEncoding) => {
            assert!(!input.sign_it, "our own signature must decode");
            if let Some(sig) = signature {
                // Whatever was refused is not base64 DER of a signature.
                let std = base64::engine::general_purpose::STANDARD;
                if let Ok(der) = std.decode(sig.trim_ascii()) {
                    assert!(p256::ecdsa::Signature::from_der(&der).is_err());
                }
            }
        }
        Err(e) => panic!("header reading cannot give {e:?}"),
    }

    // The body parser runs only on verified bodies, but must hold for any.
    if let Ok(tokens) = parse_report(input.body) {
        for t in tokens {
            assert!(
                SOURCES.contains(&t.source.as_str()),
                "source {:?}",
                t.source
            );
            if let Some(url) = t.url {
                assert!(!url.is_empty() && url == url.trim());
            }
        }
    }
});
