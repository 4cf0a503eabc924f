//! What a verified report does: every token is hashed and looked up; our
//! working keys are revoked with an incident and a queued email, keys
//! revoked before get a sighting, strangers' tokens change nothing. The
//! answer labels each token by its hash.

use super::{ReportedToken, TokenLabel};
use crate::keystore::{KeyHash, KeyStore, LeakOutcome, LeakReport, StoreError};
use time::OffsetDateTime;

/// The reporter recorded with incidents, and the revocation reason.
pub const REPORTER: &str = "github-secret-scanning";

/// Records the report in one store transaction and returns the labels (in
/// the order of `tokens`) with each token's outcome.
pub async fn respond_to_report(
    store: &dyn KeyStore,
    tokens: &[ReportedToken],
    request_id: Option<&str>,
    now: OffsetDateTime,
) -> Result<Vec<(TokenLabel, LeakOutcome)>, StoreError> {
    let reports: Vec<LeakReport> = tokens
        .iter()
        .map(|t| LeakReport {
            hash: KeyHash::of(t.token.expose()),
            reporter: REPORTER.to_string(),
            token_type: t.token_type.clone(),
            url: t.url.clone(),
            source: t.source.clone(),
            request_id: request_id.map(str::to_string),
        })
        .collect();
    let outcomes = store.record_leaks(&reports, now).await?;
    Ok(reports
        .into_iter()
        .zip(outcomes)
        .map(|(r, outcome)| {
            let label = match outcome {
                LeakOutcome::Unknown => "false_positive",
                _ => "true_positive",
            };
            (
                TokenLabel {
                    token_hash: r.hash.to_hex(),
                    token_type: r.token_type,
                    label: label.to_string(),
                },
                outcome,
            )
        })
        .collect())
}
