//! Every error status the service answers with, and its JSON body.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A request that did not succeed.
#[derive(Debug)]
pub enum ApiError {
    /// Missing, malformed, unknown, revoked or expired key: one answer for
    /// all, so a caller learns nothing about which.
    Unauthorized,
    /// The caller's address is not on the key's allowlist.
    IpNotAllowed,
    /// Over the key type's rate limit; retry after this many seconds.
    RateLimited { retry_after_secs: u64 },
    /// The store cannot be reached; retry later.
    Unavailable,
    /// A request that cannot be carried out as sent: partner signature
    /// headers missing or undecodable, a management body or query that is
    /// not what the API takes. The message is ours (anything quoted from
    /// the request is escaped).
    BadRequest(String),
    /// A partner request signed by an unknown key, or not by the key named.
    SignatureRejected,
    /// A verified partner body that is not a report.
    Unprocessable(String),
    /// GitHub's public keys are not loaded yet: GitHub will retry.
    KeysUnavailable,
    /// A partner body larger than the limit (in bytes).
    PayloadTooLarge { limit: usize },
    /// A partner body that did not arrive within the body timeout.
    BodyTimeout,
    /// A partner body that broke off or could not be decoded.
    BodyBroken,
    /// Too many partner bodies are being read at once; retry later.
    Busy,
    /// A key that may not use the management API (not a management key).
    NotManagementKey,
    /// A change the management API does not make to a management key.
    ManagementKeyTarget,
    /// No such key (or it was deleted).
    NotFound,
    /// The request conflicts with the key's state (e.g. re-enabling a
    /// revoked key).
    Conflict(String),
    /// Anything else that went wrong on our side.
    Internal,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let too_large;
        let (status, message, retry_after) = match &self {
            ApiError::PayloadTooLarge { limit } => {
                too_large = format!("The request body is larger than {limit} bytes");
                (StatusCode::PAYLOAD_TOO_LARGE, too_large.as_str(), None)
            }
            ApiError::BodyTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                "The report's body did not arrive in time",
                None,
            ),
            ApiError::BodyBroken => (
                StatusCode::BAD_REQUEST,
                "The request body could not be read",
                None,
            ),
            ApiError::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Too many reports are being received at once; try again shortly",
                Some(5),
            ),
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m.as_str(), None),
            ApiError::SignatureRejected => (
                StatusCode::UNAUTHORIZED,
                "Signature verification failed",
                None,
            ),
            ApiError::Unprocessable(m) => (StatusCode::UNPROCESSABLE_ENTITY, m.as_str(), None),
            ApiError::KeysUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "GitHub's public keys are not loaded yet; try again shortly",
                Some(30),
            ),
            ApiError::Unauthorized => {
                (StatusCode::UNAUTHORIZED, "Invalid or missing API key", None)
            }
            ApiError::IpNotAllowed => (
                StatusCode::FORBIDDEN,
                "This API key may not be used from this IP address",
                None,
            ),
            ApiError::RateLimited { retry_after_secs } => (
                StatusCode::TOO_MANY_REQUESTS,
                "Rate limit exceeded for this API key",
                Some((*retry_after_secs).max(1)),
            ),
            ApiError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "The key store is unavailable; try again shortly",
                Some(5),
            ),
            ApiError::NotManagementKey => (
                StatusCode::FORBIDDEN,
                "Only management keys can perform this operation",
                None,
            ),
            ApiError::ManagementKeyTarget => (
                StatusCode::FORBIDDEN,
                "Management keys are not changed through the management API; use keywarden keys on the database",
                None,
            ),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "API key not found", None),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, m.as_str(), None),
            ApiError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "Internal error", None),
        };
        let body = json!({ "error": { "code": status.as_u16(), "message": message } });
        let mut response = (status, Json(body)).into_response();
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<crate::keystore::StoreError> for ApiError {
    fn from(e: crate::keystore::StoreError) -> Self {
        if e.is_unavailable() {
            ApiError::Unavailable
        } else {
            use crate::keystore::StoreError as S;
            match e {
                S::Spec(spec) => ApiError::BadRequest(spec.to_string()),
                S::NotFound(_) => ApiError::NotFound,
                e @ S::NotRotatable { .. } => ApiError::Conflict(e.to_string()),
                _ => ApiError::Internal,
            }
        }
    }
}

impl From<super::body::BodyRefused> for ApiError {
    fn from(e: super::body::BodyRefused) -> Self {
        use super::body::BodyRefused as B;
        match e {
            B::TooLarge { limit } => ApiError::PayloadTooLarge { limit },
            B::OverBudget => ApiError::Busy,
            B::TimedOut(_) => ApiError::BodyTimeout,
            B::Broken => ApiError::BodyBroken,
        }
    }
}

impl From<crate::partner::SignatureError> for ApiError {
    fn from(e: crate::partner::SignatureError) -> Self {
        use crate::partner::SignatureError as S;
        match e {
            S::MissingHeader(_) | S::BadEncoding => ApiError::BadRequest(e.to_string()),
            S::UnknownKey | S::BadSignature => ApiError::SignatureRejected,
        }
    }
}
