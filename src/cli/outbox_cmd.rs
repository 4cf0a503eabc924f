//! `keywarden outbox …`: the owner-notification queue.

use super::keys_cmd::DatabaseArgs;
use super::{LogArgs, parse_duration};
use anyhow::bail;
use clap::{Args, Subcommand};
use keywarden::keystore::rfc3339;
use keywarden::notify::{MailConfig, Worker};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;
use time::OffsetDateTime;

/// How emails are sent (shared by `serve` and `outbox run`).
#[derive(Args, Debug, Clone)]
pub struct MailArgs {
    /// SMTP server, e.g. `smtp://host:587?tls=required` or
    /// `smtps://user@host:465`; without it, emails are written as `.eml`
    /// files to --mail-dir.
    #[arg(
        long,
        env = "KEYWARDEN_SMTP_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    smtp_url: Option<String>,
    #[arg(
        long,
        env = "KEYWARDEN_SMTP_PASSWORD",
        hide = true,
        hide_env_values = true
    )]
    smtp_password: Option<String>,
    /// Sender address.
    #[arg(
        long,
        env = "KEYWARDEN_MAIL_FROM",
        default_value = "keywarden <keywarden@localhost>",
        value_name = "ADDRESS"
    )]
    mail_from: String,
    /// Where `.eml` files go when no SMTP server is set.
    #[arg(long, default_value = "keywarden-mail", value_name = "DIR")]
    mail_dir: PathBuf,
    /// Attempts before a transiently failing email is marked dead.
    #[arg(long, default_value_t = 8, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=100))]
    max_attempts: u32,
    /// Delay before the first retry; doubles each time, with jitter.
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = parse_duration)]
    retry_base: Duration,
    /// How long a worker owns a claimed email before another may take it.
    #[arg(long, default_value = "5m", value_name = "DURATION", value_parser = parse_duration)]
    lease: Duration,
    /// The secret alert webhooks are signed with (HMAC-SHA256; the receiver
    /// holds it too). Better from a file or the environment than on the
    /// command line.
    #[arg(
        long,
        env = "KEYWARDEN_ALERT_WEBHOOK_SECRET",
        value_name = "SECRET",
        hide_env_values = true,
        group = "webhook_secret"
    )]
    alert_webhook_secret: Option<String>,
    /// A file holding the webhook secret (its first line).
    #[arg(long, value_name = "FILE", group = "webhook_secret")]
    alert_webhook_secret_file: Option<PathBuf>,
}

/// The fewest bytes a webhook secret may have.
const MIN_WEBHOOK_SECRET: usize = 16;

impl MailArgs {
    pub fn config(&self) -> anyhow::Result<MailConfig> {
        let webhook_secret = match (&self.alert_webhook_secret, &self.alert_webhook_secret_file) {
            (Some(secret), _) => Some(secret.clone()),
            (None, Some(file)) => {
                let text = std::fs::read_to_string(file).map_err(|e| {
                    anyhow::anyhow!(
                        "cannot read the webhook secret from {}: {e}",
                        file.display()
                    )
                })?;
                Some(text.lines().next().unwrap_or("").trim().to_string())
            }
            (None, None) => None,
        };
        if let Some(secret) = &webhook_secret
            && secret.len() < MIN_WEBHOOK_SECRET
        {
            anyhow::bail!(
                "the webhook secret is {} bytes; it needs at least {MIN_WEBHOOK_SECRET} \
                 (e.g. `openssl rand -hex 32`)",
                secret.len()
            );
        }
        Ok(MailConfig {
            from: self.mail_from.clone(),
            smtp_url: self.smtp_url.clone(),
            smtp_password: self.smtp_password.clone(),
            mail_dir: self.mail_dir.clone(),
            max_attempts: self.max_attempts,
            retry_base: self.retry_base,
            lease: self.lease,
            webhook_secret,
            ..MailConfig::default()
        })
    }
}

#[derive(Subcommand)]
pub enum OutboxCommand {
    /// Send due emails: keep running, or one pass with --once.
    Run {
        /// Send what is due now, then exit.
        #[arg(long)]
        once: bool,
        /// Time between passes when running on.
        #[arg(long, default_value = "2s", value_parser = parse_duration)]
        poll: Duration,
        #[command(flatten)]
        log: LogArgs,
        #[command(flatten)]
        mail: MailArgs,
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// List queued and sent emails.
    List {
        /// Only emails in this state.
        #[arg(long, value_parser = ["pending", "sent", "failed", "dead"])]
        state: Option<String>,
        /// Print the list as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Make a failed or dead email due again now.
    Retry {
        /// The email's id, as `outbox list` shows it.
        id: i64,
        #[command(flatten)]
        db: DatabaseArgs,
    },
}

pub fn run(cmd: OutboxCommand) -> anyhow::Result<u8> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cmd {
            OutboxCommand::Run {
                once,
                poll,
                log,
                mail,
                db,
            } => {
                log.init()?;
                let store = db.open_existing().await?;
                let worker = Worker::new(store, mail.config()?)?;
                if once {
                    let s = worker.run_pass().await?;
                    println!(
                        "sent {}, retrying {}, failed {}, dead {} (via {})",
                        s.sent,
                        s.retrying,
                        s.failed,
                        s.dead,
                        worker.mailer().describe()
                    );
                } else {
                    eprintln!(
                        "keywarden: sending outbox emails via {}",
                        worker.mailer().describe()
                    );
                    tokio::select! {
                        _ = worker.run_forever(poll) => {}
                        _ = tokio::signal::ctrl_c() => {}
                    }
                }
                Ok(0)
            }
            OutboxCommand::List { state, json, db } => {
                let rows = db
                    .open_existing()
                    .await?
                    .list_outbox(state.as_deref())
                    .await?;
                let mut out = std::io::stdout().lock();
                if json {
                    serde_json::to_writer_pretty(&mut out, &rows)?;
                    writeln!(out)?;
                } else {
                    let rows: Vec<Vec<String>> = rows
                        .iter()
                        .map(|r| {
                            vec![
                                r.id.to_string(),
                                r.state.clone(),
                                r.attempts.to_string(),
                                r.key_id.clone(),
                                r.recipient.clone(),
                                rfc3339(r.sent_at.unwrap_or(r.next_attempt_at)),
                                r.last_error.clone().unwrap_or_else(|| "-".into()),
                            ]
                        })
                        .collect();
                    let header = [
                        "ID",
                        "STATE",
                        "ATTEMPTS",
                        "KEY",
                        "RECIPIENT",
                        "NEXT/SENT",
                        "LAST ERROR",
                    ];
                    super::output::write_table(&mut out, &header, &rows)?;
                }
                Ok(0)
            }
            OutboxCommand::Retry { id, db } => {
                if !db
                    .open_existing()
                    .await?
                    .retry_outbox(id, OffsetDateTime::now_utc())
                    .await?
                {
                    bail!("no unsent outbox email with id {id}");
                }
                println!("outbox email {id} is due now");
                Ok(0)
            }
        }
    })
}
