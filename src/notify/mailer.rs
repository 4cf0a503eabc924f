//! Where emails go: SMTP from a URL (the real transport), or a directory
//! of `.eml` files (the embedded default, so a new user sees what would be
//! sent).

use crate::keystore::redact_url;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::path::PathBuf;
use std::time::Duration;
use thiserror::Error;

/// A mail set-up that cannot work.
#[derive(Debug, Error)]
pub enum NotifyError {
    #[error("bad SMTP URL: {0}")]
    BadSmtpUrl(String),
    #[error("bad sender address {0:?}")]
    BadSender(String),
    #[error("cannot use the mail directory {path}: {reason}")]
    MailDir { path: String, reason: String },
    #[error("bad recipient {0}")]
    BadRecipient(String),
    #[error(transparent)]
    Store(#[from] crate::keystore::StoreError),
}

/// One failed delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    /// Worth retrying: connection refused, timeout, a 4xx answer.
    pub transient: bool,
    pub message: String,
}

/// How the worker sends and retries.
#[derive(Debug, Clone)]
pub struct MailConfig {
    pub from: String,
    /// `smtp://host:587?tls=required`, `smtps://user@host:465`…; none means
    /// `.eml` files in `mail_dir`.
    pub smtp_url: Option<String>,
    /// Replaces the URL's password (so it need not be in the URL).
    pub smtp_password: Option<String>,
    pub mail_dir: PathBuf,
    pub max_attempts: u32,
    /// The first retry's delay; each later one doubles (up to an hour),
    /// with jitter.
    pub retry_base: Duration,
    /// How long a claimed email belongs to its worker.
    pub lease: Duration,
    /// Emails claimed at a time.
    pub batch: i64,
    /// The secret alert webhooks are signed with.
    pub webhook_secret: Option<String>,
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig {
            from: "keywarden <keywarden@localhost>".into(),
            smtp_url: None,
            smtp_password: None,
            mail_dir: PathBuf::from("keywarden-mail"),
            max_attempts: 8,
            retry_base: Duration::from_secs(30),
            lease: Duration::from_secs(300),
            batch: 20,
            webhook_secret: None,
        }
    }
}

/// The transport in use.
pub enum Mailer {
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        description: String,
    },
    Files {
        transport: AsyncFileTransport<Tokio1Executor>,
        dir: PathBuf,
    },
}

impl Mailer {
    pub fn from_config(config: &MailConfig) -> Result<(Self, Mailbox), NotifyError> {
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|_| NotifyError::BadSender(config.from.clone()))?;
        let mailer = match &config.smtp_url {
            Some(url) => {
                let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| NotifyError::BadSmtpUrl(format!("{}: {e}", redact_url(url))))?
                    .timeout(Some(Duration::from_secs(15)));
                if let Some(password) = &config.smtp_password {
                    let user = url
                        .split_once("://")
                        .and_then(|(_, rest)| rest.rsplit_once('@'))
                        .map(|(userinfo, _)| userinfo.split(':').next().unwrap_or("").to_string())
                        .unwrap_or_default();
                    let user = percent_encoding::percent_decode_str(&user)
                        .decode_utf8_lossy()
                        .into_owned();
                    builder = builder.credentials(Credentials::new(user, password.clone()));
                }
                Mailer::Smtp {
                    transport: builder.build(),
                    description: redact_url(url),
                }
            }
            None => {
                std::fs::create_dir_all(&config.mail_dir).map_err(|e| NotifyError::MailDir {
                    path: config.mail_dir.display().to_string(),
                    reason: e.to_string(),
                })?;
                Mailer::Files {
                    transport: AsyncFileTransport::new(&config.mail_dir),
                    dir: config.mail_dir.clone(),
                }
            }
        };
        Ok((mailer, from))
    }

    /// `smtp://host:port` (no password) or `files in DIR`.
    pub fn describe(&self) -> String {
        match self {
            Mailer::Smtp { description, .. } => description.clone(),
            Mailer::Files { dir, .. } => format!(".eml files in {}", dir.display()),
        }
    }

    pub async fn send(&self, message: Message) -> Result<(), SendError> {
        match self {
            Mailer::Smtp { transport, .. } => {
                transport
                    .send(message)
                    .await
                    .map(|_| ())
                    .map_err(|e| SendError {
                        transient: !e.is_permanent(),
                        message: e.to_string(),
                    })
            }
            Mailer::Files { transport, .. } => {
                transport
                    .send(message)
                    .await
                    .map(|_| ())
                    .map_err(|e| SendError {
                        transient: true,
                        message: e.to_string(),
                    })
            }
        }
    }
}
