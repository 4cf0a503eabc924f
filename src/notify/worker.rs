//! The outbox worker: claim due emails under a lease, send, record.

use super::{MailConfig, Mailer, NotifyError, render};
use crate::keystore::{AttemptOutcome, KeyStore, OutboxEmail};
use lettre::message::Mailbox;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// What one pass over the outbox did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PassSummary {
    pub sent: usize,
    pub retrying: usize,
    pub dead: usize,
    pub failed: usize,
    /// Emails another worker took over after this one's lease ran out.
    pub lease_lost: usize,
}

/// One worker: several may run on one store (threads, processes, replicas).
pub struct Worker {
    store: Arc<dyn KeyStore>,
    mailer: Mailer,
    from: Mailbox,
    config: MailConfig,
    id: String,
}

/// The delay before retry `attempt` (1-based): `base × 2^(attempt-1)`, at
/// most an hour, scaled by a random factor in [0.5, 1.0).
fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(20)));
    let capped = exp.min(Duration::from_secs(3600));
    let mut byte = [0u8; 1];
    let _ = getrandom::fill(&mut byte);
    let jittered = capped.mul_f64(0.5 + f64::from(byte[0]) / 512.0);
    // The store keeps whole seconds: round up, so a retry never falls due
    // in the second it was scheduled.
    Duration::from_secs(jittered.as_secs() + u64::from(jittered.subsec_nanos() > 0))
}

impl Worker {
    pub fn new(store: Arc<dyn KeyStore>, config: MailConfig) -> Result<Self, NotifyError> {
        let (mailer, from) = Mailer::from_config(&config)?;
        let mut bytes = [0u8; 6];
        let _ = getrandom::fill(&mut bytes);
        let id = format!("{}-{}", std::process::id(), hex::encode(bytes));
        Ok(Worker {
            store,
            mailer,
            from,
            config,
            id,
        })
    }

    pub fn mailer(&self) -> &Mailer {
        &self.mailer
    }

    /// Claims and sends due emails, batch after batch, until none is due.
    pub async fn run_pass(&self) -> Result<PassSummary, NotifyError> {
        let mut summary = PassSummary::default();
        loop {
            let now = OffsetDateTime::now_utc();
            let lease_until = now + self.config.lease;
            let batch = self
                .store
                .claim_outbox(&self.id, now, lease_until, self.config.batch)
                .await?;
            if batch.is_empty() {
                return Ok(summary);
            }
            for email in batch {
                self.deliver(&email, lease_until, &mut summary).await?;
            }
        }
    }

    async fn deliver(
        &self,
        email: &OutboxEmail,
        lease_until: OffsetDateTime,
        summary: &mut PassSummary,
    ) -> Result<(), NotifyError> {
        let result = if email.channel == "webhook" {
            super::webhook::send(email, self.config.webhook_secret.as_deref()).await
        } else {
            match render(email, &self.from) {
                Ok(message) => self.mailer.send(message).await,
                Err(e) => Err(super::SendError {
                    transient: false,
                    message: e.to_string(),
                }),
            }
        };
        let now = OffsetDateTime::now_utc();
        let (outcome, error) = match result {
            Ok(()) => (AttemptOutcome::Sent, None),
            Err(e) if !e.transient => (AttemptOutcome::Failed, Some(e.message)),
            Err(e) if email.attempts >= i64::from(self.config.max_attempts) => {
                (AttemptOutcome::Dead, Some(e.message))
            }
            Err(e) => {
                let delay = backoff(self.config.retry_base, email.attempts.max(1) as u32);
                (AttemptOutcome::Retry(now + delay), Some(e.message))
            }
        };
        let kept = self
            .record(email, &outcome, error.as_deref(), now, lease_until)
            .await?;
        match (kept, &outcome) {
            (false, _) => summary.lease_lost += 1,
            (true, AttemptOutcome::Sent) => summary.sent += 1,
            (true, AttemptOutcome::Retry(_)) => summary.retrying += 1,
            (true, AttemptOutcome::Dead) => summary.dead += 1,
            (true, AttemptOutcome::Failed) => summary.failed += 1,
        }
        let error = crate::untrusted::one_line(error.as_deref().unwrap_or(""), 300);
        let (outbox_id, key, attempt) = (email.id, &email.key.id, email.attempts);
        match &outcome {
            AttemptOutcome::Sent => {
                tracing::info!(outbox_id, key, attempt, "outbox email sent")
            }
            AttemptOutcome::Retry(at) => tracing::warn!(
                outbox_id,
                key,
                attempt,
                error,
                retry_at = %crate::keystore::rfc3339(*at),
                "outbox email not sent; it will be retried"
            ),
            AttemptOutcome::Failed => tracing::error!(
                outbox_id,
                key,
                attempt,
                error,
                "outbox email failed permanently and will not be retried: the owner is not told \
                 (fix the cause, then `keywarden outbox retry {outbox_id}`)"
            ),
            AttemptOutcome::Dead => tracing::error!(
                outbox_id,
                key,
                attempt,
                error,
                "outbox email given up after its last attempt and will not be retried: the owner \
                 is not told (`keywarden outbox retry {outbox_id}` to try again)"
            ),
        }
        Ok(())
    }

    /// Records an attempt. A store that is unavailable is asked again,
    /// every second, while the lease lasts: the email was sent (or tried),
    /// and leaving its row claimed would hold it, and the rest of the
    /// batch, until the lease ran out.
    async fn record(
        &self,
        email: &OutboxEmail,
        outcome: &AttemptOutcome,
        error: Option<&str>,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
    ) -> Result<bool, NotifyError> {
        loop {
            match self
                .store
                .finish_outbox(email.id, &self.id, outcome, error, now)
                .await
            {
                Ok(kept) => return Ok(kept),
                Err(e) if e.is_unavailable() && OffsetDateTime::now_utc() < lease_until => {
                    tracing::warn!(outbox_id = email.id, error = %e, "cannot record an outbox attempt; trying again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Runs passes forever, `poll` apart; errors are logged and retried.
    pub async fn run_forever(&self, poll: Duration) {
        loop {
            if let Err(e) = self.run_pass().await {
                tracing::warn!(error = %e, "outbox pass failed");
            }
            tokio::time::sleep(poll).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let base = Duration::from_secs(10);
        for attempt in 1..6u32 {
            let full = base * 2u32.pow(attempt - 1);
            let d = backoff(base, attempt);
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
            assert_eq!(d.subsec_nanos(), 0);
        }
        assert!(backoff(base, 40) <= Duration::from_secs(3600));
    }
}
