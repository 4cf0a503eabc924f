//! `keywarden serve`: the HTTP service.

use super::keys_cmd::DatabaseArgs;
use super::outbox_cmd::MailArgs;
use super::{LogArgs, parse_duration, parse_positive_duration};
use anyhow::Context;
use clap::Args;
use ipnet::IpNet;
use keywarden::partner::{GithubKeys, KeySource};
use keywarden::server::{
    self, AlertConfig, AppState, BODY_LIMIT, ConnectionLimits, DEFAULT_PARTNER_PATH, Listeners,
    RateLimitMode, ServerConfig, TlsMinVersion, TlsSetup,
};
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
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
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
    #[arg(long, default_value = "5s", value_name = "DURATION", value_parser = parse_positive_duration)]
    store_timeout: Duration,
    /// Address of the admin listener (`/metrics`, `/readyz`, `/healthz`);
    /// `none` for no admin listener. Keep it off the internet.
    #[arg(long, default_value = "127.0.0.1:8081", value_name = "ADDR|none",
          value_parser = parse_admin_listen)]
    admin_listen: AdminListen,
    /// Serve HTTPS on --listen with this PEM certificate chain (needs
    /// --tls-key). Reloaded on SIGHUP and when the file changes.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The lowest TLS version a client may use: 1.3 (default) or 1.2.
    #[arg(
        long,
        default_value = "1.3",
        value_name = "VERSION",
        requires = "tls_cert"
    )]
    tls_min_version: TlsMinVersion,
    /// Time a client has to send a whole request head (and to finish the
    /// TLS handshake) after connecting or starting a request.
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = parse_positive_duration)]
    header_read_timeout: Duration,
    /// Time a keep-alive connection may wait for its next request.
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = parse_positive_duration)]
    idle_timeout: Duration,
    /// Time one request may take from its head to the last byte of its
    /// answer; a connection whose client does not read its answers is
    /// closed then.
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = parse_positive_duration)]
    request_timeout: Duration,
    /// Time a partner report's body has to arrive once its headers are read.
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = parse_positive_duration)]
    body_timeout: Duration,
    /// What all partner bodies being read at once may hold; past it a
    /// report gets 503 with Retry-After (GitHub retries).
    #[arg(long, default_value = "32MiB", value_name = "SIZE", value_parser = parse_budget)]
    partner_body_budget: u64,
    /// Open connections at most on the public listener; at the cap an idle
    /// or half-sent connection is shed for a new one. Default: the
    /// descriptor limit less 256 (a quarter when the limit is small).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: Option<u64>,
    /// How keys' rate limits are counted: `shared` in the store, so that
    /// every replica on one PostgreSQL store counts together; `local` in
    /// this process (one replica); `off` (a gateway in front limits);
    /// `auto`: shared on PostgreSQL, local on SQLite.
    #[arg(long, default_value = "auto", value_name = "MODE",
          value_parser = ["auto", "local", "shared", "off"])]
    rate_limits: String,
    /// How long the usage log keeps each key check (caller, time, outcome;
    /// `keys activity`, `incidents show`).
    #[arg(long, default_value = "30d", value_name = "DURATION", value_parser = parse_positive_duration)]
    usage_retention: Duration,
    /// Keep no usage log.
    #[arg(long, conflicts_with = "usage_retention")]
    no_usage_log: bool,
    /// Usage records waiting to be written at most; past it records are
    /// dropped and counted (keywarden_usage_records_dropped_total), never
    /// waited for.
    #[arg(long, default_value = "65536", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=16_777_216))]
    usage_queue: u32,
    /// A key revoked because it leaked and tried again this long after its
    /// revocation gets its owner one email saying so, with the attempts
    /// and their networks (0s: from the first attempt).
    #[arg(long, default_value = "10m", value_name = "DURATION", value_parser = parse_duration)]
    alert_revoked_use_after: Duration,
    /// Also send every owner alert to this webhook, as JSON signed with
    /// HMAC-SHA256 (needs --alert-webhook-secret or its file).
    #[arg(long, env = "KEYWARDEN_ALERT_WEBHOOK", value_name = "URL",
          value_parser = parse_webhook_url, requires = "webhook_secret")]
    alert_webhook: Option<String>,
    /// A key's history is settled, for the new-network and spike alerts,
    /// once its first use is this old...
    #[arg(long, default_value = "7d", value_name = "DURATION", value_parser = parse_positive_duration)]
    alert_settled_after: Duration,
    /// ...and it has had this many requests.
    #[arg(long, default_value = "100", value_name = "N",
          value_parser = clap::value_parser!(i64).range(1..))]
    alert_settled_requests: i64,
    /// A spike: more requests in five minutes than this many times the
    /// key's rate over its trailing week...
    #[arg(long, default_value = "10", value_name = "K", value_parser = parse_spike_factor)]
    alert_spike_factor: f64,
    /// ...and at least this many.
    #[arg(long, default_value = "100", value_name = "N",
          value_parser = clap::value_parser!(i64).range(1..))]
    alert_spike_min: i64,
    /// Do not send outbox emails from this process (run `keywarden outbox
    /// run` elsewhere).
    #[arg(long)]
    no_mail_worker: bool,
    /// Time between outbox passes.
    #[arg(long, default_value = "1s", value_name = "DURATION", value_parser = parse_duration)]
    mail_poll: Duration,
    #[command(flatten)]
    mail: MailArgs,
    #[command(flatten)]
    db: DatabaseArgs,
}

#[derive(Debug, Clone, Copy)]
enum AdminListen {
    At(SocketAddr),
    Off,
}

fn parse_admin_listen(s: &str) -> Result<AdminListen, String> {
    if s == "none" {
        return Ok(AdminListen::Off);
    }
    s.parse()
        .map(AdminListen::At)
        .map_err(|_| format!("{s:?} is neither an address (127.0.0.1:8081) nor `none`"))
}

fn parse_budget(s: &str) -> Result<u64, String> {
    match super::scan_cmd::parse_size(s)? {
        n if n < BODY_LIMIT as u64 => Err(format!(
            "must hold at least one whole report ({BODY_LIMIT} bytes)"
        )),
        n if n > u64::from(u32::MAX) => Err("must be at most 4GiB".to_string()),
        n => Ok(n),
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<u8> {
    // One TLS crypto provider for every client (GitHub API, SMTP): ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    args.log.init()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        // Everything that can refuse the start without leaving anything
        // behind comes first: flags, certificates, the listening sockets.
        // Only then is the store opened (a new SQLite file created).
        let tls = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(Arc::new(
                TlsSetup::new(cert, key, args.tls_min_version)
                    .context("cannot serve HTTPS")?,
            )),
            _ => None,
        };
        if args.request_timeout <= args.body_timeout + args.store_timeout {
            anyhow::bail!(
                "--request-timeout ({}) must be longer than --body-timeout ({}) and --store-timeout ({}) together",
                humantime::format_duration(args.request_timeout),
                humantime::format_duration(args.body_timeout),
                humantime::format_duration(args.store_timeout)
            );
        }
        let postgres = ["postgres://", "postgresql://"]
            .iter()
            .any(|scheme| args.db.database_url.starts_with(scheme));
        let rate_limits = match (args.rate_limits.as_str(), postgres) {
            ("off", _) => RateLimitMode::Off,
            ("local", _) | ("auto", false) => RateLimitMode::Local,
            (_, true) => RateLimitMode::Shared,
            (_, false) => anyhow::bail!(
                "--rate-limits shared counts in the key store, which needs PostgreSQL \
                 (--database-url postgres://…); one replica on SQLite counts with \
                 --rate-limits local"
            ),
        };
        let mut limits = ConnectionLimits::for_this_process();
        limits.header_read_timeout = args.header_read_timeout;
        limits.idle_timeout = args.idle_timeout;
        limits.request_timeout = args.request_timeout;
        if let Some(n) = args.max_connections {
            limits.max_connections = usize::try_from(n).unwrap_or(usize::MAX);
        }
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr = listener.local_addr()?;
        let admin = match args.admin_listen {
            AdminListen::At(at) => Some(
                tokio::net::TcpListener::bind(at)
                    .await
                    .with_context(|| format!("cannot listen on {at} (--admin-listen)"))?,
            ),
            AdminListen::Off => None,
        };
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
                args.mail.config()?,
            )?)
        };
        let admin_text = match &admin {
            Some(a) => format!("admin on http://{}", a.local_addr()?),
            None => "no admin listener".to_string(),
        };
        eprintln!(
            "keywarden: serving on {}://{addr} ({admin_text}; key store: {}; rate limits: {}; partner endpoint: {}; mail: {}; at most {} connections)",
            if tls.is_some() { "https" } else { "http" },
            store.backend(),
            match rate_limits {
                RateLimitMode::Shared => "shared",
                RateLimitMode::Local => "this process",
                RateLimitMode::Off => "off",
            },
            args.partner_path,
            worker
                .as_ref()
                .map_or("not sent by this process".to_string(), |w| w
                    .mailer()
                    .describe()),
            limits.max_connections,
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
                body_timeout: args.body_timeout,
                partner_body_budget: args.partner_body_budget as usize,
                rate_limits,
                usage_retention: (!args.no_usage_log).then_some(args.usage_retention),
                usage_queue: args.usage_queue as usize,
                alert_revoked_use_after: args.alert_revoked_use_after,
                alerts: AlertConfig {
                    settled_after: args.alert_settled_after,
                    settled_requests: args.alert_settled_requests,
                    spike_factor: args.alert_spike_factor,
                    spike_min: args.alert_spike_min,
                    webhook: args.alert_webhook,
                },
            },
        );
        let listeners = Listeners {
            public: listener,
            tls,
            limits,
            admin,
        };
        server::serve(listeners, state, shutdown_signal()).await?;
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

fn parse_webhook_url(s: &str) -> Result<String, String> {
    keywarden::notify::check_webhook_url(s)?;
    Ok(s.to_string())
}

fn parse_spike_factor(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(k) if k.is_finite() && k >= 1.0 => Ok(k),
        _ => Err("a number of times the usual rate, at least 1 (e.g. 10)".into()),
    }
}
