//! `keywarden serve`: the HTTP service.

use super::LogArgs;
use super::keys_cmd::DatabaseArgs;
use super::outbox_cmd::MailArgs;
use anyhow::Context;
use clap::Args;
use ipnet::IpNet;
use keywarden::partner::{GithubKeys, KeySource};
use keywarden::server::{self, AppState, DEFAULT_PARTNER_PATH, ServerConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    listen: SocketAddr,
    /// Proxy networks whose `X-Forwarded-For` header names the client;
    /// repeatable. Without it the socket address is the client.
    #[arg(long = "trusted-proxy", value_name = "CIDR", value_parser = keywarden::keystore::parse_cidr)]
    trusted_proxies: Vec<IpNet>,
    /// Path of the GitHub secret-scanning partner endpoint.
    #[arg(long, default_value = DEFAULT_PARTNER_PATH, value_name = "PATH",
          value_parser = |s: &str| if s.starts_with('/') && !s.contains(['{', '}', '*']) {
              Ok(s.to_string())
          } else {
              Err("must start with / and hold no {, } or *".to_string())
          })]
    partner_path: String,
    /// GitHub API base URL for its secret-scanning public keys (GitHub
    /// Enterprise: `https://HOST/api/v3`). A token in KEYWARDEN_GITHUB_TOKEN
    /// avoids unauthenticated rate limits.
    #[arg(
        long,
        env = "KEYWARDEN_GITHUB_API_URL",
        default_value = "https://api.github.com",
        value_name = "URL"
    )]
    github_api_url: String,
    /// Trust the public keys in FILE (the JSON GitHub's endpoint returns)
    /// instead of fetching them.
    #[arg(long, value_name = "FILE", conflicts_with = "github_api_url")]
    github_keys_file: Option<PathBuf>,
    /// Least time between key refreshes caused by unknown key identifiers.
    #[arg(long, value_name = "DURATION", default_value = "60s",
          value_parser = |s: &str| humantime::parse_duration(s).map_err(|e| e.to_string()))]
    github_keys_refresh_interval: Duration,
    #[arg(
        long,
        env = "KEYWARDEN_GITHUB_TOKEN",
        hide = true,
        hide_env_values = true
    )]
    github_token: Option<String>,
    #[command(flatten)]
    log: LogArgs,
    /// The longest a request waits on the key store; a store that has not
    /// answered by then gets the request a 503 (GitHub retries).
    #[arg(long, default_value = "5s", value_name = "DURATION",
          value_parser = |s: &str| match humantime::parse_duration(s) {
              Ok(d) if d.is_zero() => Err("must be more than 0".to_string()),
              Ok(d) => Ok(d),
              Err(e) => Err(e.to_string()),
          })]
    store_timeout: Duration,
    /// Do not send outbox emails from this process (run `keywarden outbox
    /// run` elsewhere).
    #[arg(long)]
    no_mail_worker: bool,
    /// Time between outbox passes.
    #[arg(long, default_value = "1s", value_name = "DURATION",
          value_parser = |s: &str| humantime::parse_duration(s).map_err(|e| e.to_string()))]
    mail_poll: Duration,
    #[command(flatten)]
    mail: MailArgs,
    #[command(flatten)]
    db: DatabaseArgs,
}

pub fn run(args: ServeArgs) -> anyhow::Result<u8> {
    // One TLS crypto provider for every client (GitHub API, SMTP): ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    args.log.init()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let store = args.db.open().await?;
        let source = match &args.github_keys_file {
            Some(path) => KeySource::File(path.clone()),
            None => KeySource::github(&args.github_api_url, args.github_token.clone())?,
        };
        let github_keys = Arc::new(GithubKeys::new(source, args.github_keys_refresh_interval));
        // A keys file is the operator's own: a bad one stops the start.
        // GitHub's keys load in the background (503 to reports until then).
        if args.github_keys_file.is_some() {
            let n = github_keys.load().await?;
            tracing::info!(keys = n, "trusting GitHub public keys from file");
        }
        let worker = if args.no_mail_worker {
            None
        } else {
            Some(keywarden::notify::Worker::new(
                store.clone(),
                args.mail.config(),
            )?)
        };
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr = listener.local_addr()?;
        eprintln!(
            "keywarden: serving on http://{addr} (key store: {}; partner endpoint: {}; mail: {})",
            store.backend(),
            args.partner_path,
            worker
                .as_ref()
                .map_or("not sent by this process".to_string(), |w| w
                    .mailer()
                    .describe())
        );
        if let Some(worker) = worker {
            let poll = args.mail_poll;
            tokio::spawn(async move { worker.run_forever(poll).await });
        }
        let state = AppState::new(
            store,
            github_keys,
            ServerConfig {
                trusted_proxies: args.trusted_proxies,
                partner_path: args.partner_path,
                store_timeout: args.store_timeout,
            },
        );
        server::serve(listener, state, shutdown_signal()).await?;
        eprintln!("keywarden: stopped");
        Ok(0)
    })
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
