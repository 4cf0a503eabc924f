//! The deployment's alert webhook: each alert as one JSON `POST`, signed
//! with HMAC-SHA256 so that the receiver can tell it came from us.
//!
//! The receiver checks `X-Keywarden-Signature-256: sha256=HEX`, the
//! HMAC-SHA256 of `TIMESTAMP.BODY` under the shared secret, where
//! TIMESTAMP is the `X-Keywarden-Timestamp` header (Unix seconds: refuse
//! old ones to stop replays) and BODY the raw request body. The body names
//! the key by id, name and label, never the key.

use super::SendError;
use crate::keystore::{NEW_NETWORK, OutboxEmail, STILL_IN_USE, USAGE_SPIKE, rfc3339};
use std::time::Duration;
use time::OffsetDateTime;

/// How long one delivery may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The longest webhook URL accepted.
pub const MAX_URL_CHARS: usize = 2000;

/// Whether `url` can be a webhook: `http://` or `https://`, one line,
/// bounded. The reason when not.
pub fn check_url(url: &str) -> Result<(), String> {
    if url.chars().count() > MAX_URL_CHARS {
        return Err(format!("longer than {MAX_URL_CHARS} characters"));
    }
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err("not an http:// or https:// URL".into());
    }
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("holds spaces or control characters".into());
    }
    url.parse::<ureq::http::Uri>()
        .map(|_| ())
        .map_err(|e| format!("not a URL ({e})"))
}

/// The alert's name in the body.
fn alert_name(kind: &str) -> &str {
    match kind {
        STILL_IN_USE => "still-in-use",
        NEW_NETWORK => "new-network",
        USAGE_SPIKE => "usage-spike",
        other => other,
    }
}

/// The JSON body of alert `email`.
pub fn body(email: &OutboxEmail) -> Vec<u8> {
    let k = &email.key;
    let evidence = match (&email.alert, &email.evidence) {
        (Some(found), _) => serde_json::to_value(found),
        (None, Some(summary)) => serde_json::to_value(summary),
        (None, None) => Ok(serde_json::Value::Null),
    }
    .unwrap_or(serde_json::Value::Null);
    serde_json::to_vec(&serde_json::json!({
        "alert": alert_name(&email.kind),
        "delivery": email.id,
        "key": {
            "id": k.id,
            "name": k.name,
            "label": k.label,
            "type": k.key_type.to_string(),
            "revoked_at": k.revoked_at.map(rfc3339),
        },
        "evidence": evidence,
    }))
    .unwrap_or_default()
}

/// `sha256=HEX` of `TIMESTAMP.BODY` under `secret`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    format!("sha256={}", hex::encode(ctx.sign().as_ref()))
}

/// Posts alert `email` to its webhook, signed with `secret`.
pub async fn send(email: &OutboxEmail, secret: Option<&str>) -> Result<(), SendError> {
    let permanent = |message: String| SendError {
        transient: false,
        message,
    };
    let Some(secret) = secret.filter(|s| !s.is_empty()) else {
        return Err(permanent(
            "no webhook secret in this worker: start it with --alert-webhook-secret-file (or \
             KEYWARDEN_ALERT_WEBHOOK_SECRET)"
                .into(),
        ));
    };
    let url = email.recipient.clone();
    check_url(&url).map_err(|why| permanent(format!("webhook URL refused: {why}")))?;
    let body = body(email);
    let timestamp = OffsetDateTime::now_utc().unix_timestamp();
    let signature = signature(secret.as_bytes(), timestamp, &body);
    let delivery = email.id.to_string();
    let outcome = tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(TIMEOUT))
            .max_redirects(0)
            .http_status_as_error(false)
            .user_agent(concat!("keywarden/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        agent
            .post(&url)
            .header("Content-Type", "application/json")
            .header("X-Keywarden-Timestamp", timestamp.to_string())
            .header("X-Keywarden-Signature-256", signature)
            .header("X-Keywarden-Delivery", delivery)
            .send(&body[..])
            .map(|response| response.status().as_u16())
    })
    .await
    .map_err(|e| SendError {
        transient: true,
        message: format!("webhook task failed: {e}"),
    })?;
    match outcome {
        Ok(status) if (200..300).contains(&status) => Ok(()),
        // Busy, or down for now: worth asking again.
        Ok(status @ (408 | 425 | 429 | 500..=599)) => Err(SendError {
            transient: true,
            message: format!("webhook answered {status}"),
        }),
        Ok(status) => Err(permanent(format!("webhook answered {status}"))),
        Err(e) => Err(SendError {
            transient: true,
            message: format!(
                "webhook not reached: {}",
                crate::untrusted::one_line(&e.to_string(), 300)
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_covers_the_timestamp_and_the_body() {
        let a = signature(b"secret", 1_700_000_000, b"{\"a\":1}");
        assert!(a.starts_with("sha256=") && a.len() == 7 + 64, "{a}");
        assert_ne!(a, signature(b"secret", 1_700_000_001, b"{\"a\":1}"));
        assert_ne!(a, signature(b"secret", 1_700_000_000, b"{\"a\":2}"));
        assert_ne!(a, signature(b"other", 1_700_000_000, b"{\"a\":1}"));
    }

    #[test]
    fn webhook_urls_are_http_and_one_bounded_line() {
        assert!(check_url("https://hooks.example.com/keywarden").is_ok());
        assert!(check_url("http://127.0.0.1:8080/x").is_ok());
        for bad in [
            "ftp://example.com/",
            "https://example.com/\r\nX-Evil: 1",
            "https://exa mple.com/",
            "example.com/hook",
        ] {
            assert!(check_url(bad).is_err(), "{bad:?}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_CHARS));
        assert!(check_url(&long).is_err());
    }
}
