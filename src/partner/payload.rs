//! The report GitHub posts (a JSON array of `{token, type, url, source}`)
//! and the labels we answer with.

use crate::secret::Secret;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Sources GitHub names; anything else is recorded as `unknown`.
pub const SOURCES: [&str; 19] = [
    "content",
    "commit",
    "pull_request_title",
    "pull_request_description",
    "pull_request_comment",
    "issue_title",
    "issue_description",
    "issue_comment",
    "discussion_title",
    "discussion_body",
    "discussion_comment",
    "commit_comment",
    "gist_content",
    "gist_comment",
    "wiki_content",
    "wiki_commit",
    "npm",
    "manual_submission",
    "unknown",
];

/// A body that is not a report.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum BodyError {
    #[error("body is not JSON: {0}")]
    NotJson(String),
    #[error("body must be a JSON array of {{token, type, url, source}} objects")]
    NotAnArray,
    #[error("item {index}: {reason}")]
    BadItem { index: usize, reason: String },
}

/// One token of a report.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportedToken {
    pub token: Secret,
    pub token_type: String,
    /// Where GitHub found it; may be empty or odd, never validated.
    pub url: Option<String>,
    /// One of [`SOURCES`] (lowercased; unknown values become `unknown`).
    pub source: String,
}

#[derive(Deserialize)]
struct RawItem {
    token: String,
    #[serde(rename = "type")]
    token_type: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    source: Option<String>,
}

fn normalise_source(source: Option<&str>) -> String {
    let lower = source.unwrap_or("unknown").trim().to_ascii_lowercase();
    if SOURCES.contains(&lower.as_str()) {
        lower
    } else {
        "unknown".to_string()
    }
}

/// Parses a verified body. Unknown fields are ignored; `url` and `source`
/// are optional; an item without a string `token` and `type` fails the
/// body (it is not GitHub's shape), naming the item but never its value.
pub fn parse_report(body: &[u8]) -> Result<Vec<ReportedToken>, BodyError> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        // serde_json's messages quote no input, only positions.
        BodyError::NotJson(format!("line {} column {}", e.line(), e.column()))
    })?;
    let serde_json::Value::Array(items) = value else {
        return Err(BodyError::NotAnArray);
    };
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            if !item.is_object() {
                return Err(BodyError::BadItem {
                    index,
                    reason: "not an object".into(),
                });
            }
            let raw: RawItem = serde_json::from_value(item).map_err(|_| BodyError::BadItem {
                index,
                reason: "needs string fields `token` and `type`".into(),
            })?;
            Ok(ReportedToken {
                token: Secret::new(raw.token),
                token_type: raw.token_type,
                url: raw
                    .url
                    .map(|u| u.trim().to_string())
                    .filter(|u| !u.is_empty()),
                source: normalise_source(raw.source.as_deref()),
            })
        })
        .collect()
}

/// Our answer for one token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenLabel {
    /// Lowercase hex SHA-256 of the token.
    pub token_hash: String,
    /// The type as GitHub sent it.
    pub token_type: String,
    /// `true_positive` (one of our keys, now or before) or `false_positive`.
    pub label: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optional_and_unknown_fields_are_tolerated() {
        let body = br#"[{"token":"a","type":"openrouter_api_key","extra":1},
            {"token":"b","type":"t","url":" https://github.com/x ","source":"Commit"},
            {"token":"c","type":"t","url":"","source":"somewhere_new"}]"#;
        let items = parse_report(body).unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(
            (items[0].url.as_deref(), items[0].source.as_str()),
            (None, "unknown")
        );
        assert_eq!(items[1].url.as_deref(), Some("https://github.com/x"));
        assert_eq!(items[1].source, "commit");
        assert_eq!(
            (items[2].url.as_deref(), items[2].source.as_str()),
            (None, "unknown")
        );
    }

    #[test]
    fn wrong_shapes_are_refused_without_quoting_the_body() {
        assert_eq!(
            parse_report(br#"{"token":"x"}"#),
            Err(BodyError::NotAnArray)
        );
        assert!(matches!(parse_report(b"[{"), Err(BodyError::NotJson(_))));
        let err = parse_report(br#"[{"token":"sk-or-v1-secret","type":3}]"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "item 0: needs string fields `token` and `type`"
        );
        assert!(matches!(
            parse_report(b"[1]"),
            Err(BodyError::BadItem { index: 0, .. })
        ));
        assert_eq!(parse_report(b"[]"), Ok(vec![]));
    }
}
