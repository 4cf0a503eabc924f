//! Owner notification: the outbox worker that claims queued emails, writes
//! them, sends them with lettre (SMTP, or `.eml` files by default) and
//! records each attempt, retrying transient failures with backoff.
//!
//! An email never holds a whole key (the store has none to give). This
//! module never prints; the CLI and server report what it did.

mod alert_email;
mod email;
mod mailer;
mod webhook;
mod worker;

pub use email::{render, subject};
pub use mailer::{MailConfig, Mailer, NotifyError, SendError};
pub use webhook::{check_url as check_webhook_url, signature as webhook_signature};
pub use worker::{PassSummary, Worker};
