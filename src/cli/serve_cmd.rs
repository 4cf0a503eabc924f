//! `keywarden serve`: the HTTP service.

use super::keys_cmd::DatabaseArgs;
use anyhow::Context;
use clap::Args;
use ipnet::IpNet;
use keywarden::server::{self, AppState, ServerConfig};
use std::net::SocketAddr;

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    listen: SocketAddr,
    /// Proxy networks whose `X-Forwarded-For` header names the client;
    /// repeatable. Without it the socket address is the client.
    #[arg(long = "trusted-proxy", value_name = "CIDR", value_parser = keywarden::keystore::parse_cidr)]
    trusted_proxies: Vec<IpNet>,
    #[command(flatten)]
    db: DatabaseArgs,
}

pub fn run(args: ServeArgs) -> anyhow::Result<u8> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let store = args.db.open().await?;
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr = listener.local_addr()?;
        eprintln!(
            "keywarden: serving on http://{addr} (key store: {})",
            store.backend()
        );
        let state = AppState::new(
            store,
            ServerConfig {
                trusted_proxies: args.trusted_proxies,
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
