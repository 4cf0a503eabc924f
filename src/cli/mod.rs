//! The command line: parses flags, wires rules, sources, scan and reports
//! together, and is the only place that prints or chooses an exit code.

#[cfg(feature = "responder")]
mod activity_cmd;
mod git_cmd;
mod history_cmd;
#[cfg(feature = "responder")]
mod keys_cmd;
#[cfg(feature = "responder")]
mod keys_remote;
#[cfg(feature = "responder")]
mod outbox_cmd;
mod output;
#[cfg(feature = "responder")]
mod partner_cmd;
mod progress;
mod rules_cmd;
mod scan_cmd;
#[cfg(feature = "responder")]
mod serve_cmd;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// The version, and which build this is.
const VERSION: &str = if cfg!(feature = "responder") {
    concat!(env!("CARGO_PKG_VERSION"), " (full build)")
} else {
    concat!(env!("CARGO_PKG_VERSION"), " (scanner-only build)")
};

/// Exit status when something went wrong (bad flags, unreadable config...).
pub const EXIT_ERROR: u8 = 2;

#[derive(Parser)]
#[command(
    name = "keywarden",
    version = VERSION,
    about = "Find leaked OpenRouter API keys (and other secrets) in files, stdin and git history",
    after_help = "Exit status: 0 nothing found, 1 secrets found (see --exit-code), 2 error."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Scan files and directories (or stdin with `-`) for secrets.
    Scan(scan_cmd::ScanArgs),
    /// Scan git history: every commit reachable from any ref, or a range.
    History(history_cmd::HistoryArgs),
    /// Scan what `git commit` would record (the index against HEAD): only
    /// secrets on added lines. For pre-commit hooks.
    Staged(git_cmd::StagedArgs),
    /// Install or remove keywarden's git pre-commit hook.
    #[command(subcommand)]
    Hook(git_cmd::HookCommand),
    /// List or check rules.
    #[command(subcommand)]
    Rules(rules_cmd::RulesCommand),
    /// Manage API keys in the key store (create, list, revoke, rotate, import).
    #[cfg(feature = "responder")]
    #[command(subcommand)]
    Keys(keys_cmd::KeysCommand),
    /// Run the HTTP service: the key check `GET /api/v1/key` and the GitHub
    /// secret-scanning partner endpoint.
    #[cfg(feature = "responder")]
    Serve(Box<serve_cmd::ServeArgs>),
    /// The owner-notification emails: run the sender, list, retry.
    #[cfg(feature = "responder")]
    #[command(subcommand)]
    Outbox(outbox_cmd::OutboxCommand),
    /// Leak reports and who tried each leaked key after its revocation.
    #[cfg(feature = "responder")]
    #[command(subcommand)]
    Incidents(activity_cmd::IncidentsCommand),
    /// Rehearse GitHub's secret-scanning reports (keygen, sign, send).
    #[cfg(feature = "responder")]
    #[command(subcommand)]
    Partner(partner_cmd::PartnerCommand),
    /// Manage API keys (not in this build: it is the scanner-only build).
    #[cfg(not(feature = "responder"))]
    Keys(NotBuilt),
    /// Run the HTTP service (not in this build: it is the scanner-only build).
    #[cfg(not(feature = "responder"))]
    Serve(NotBuilt),
    /// The owner-notification emails (not in this build: it is the
    /// scanner-only build).
    #[cfg(not(feature = "responder"))]
    Outbox(NotBuilt),
    /// Rehearse GitHub's reports (not in this build: it is the scanner-only
    /// build).
    #[cfg(not(feature = "responder"))]
    Partner(NotBuilt),
    /// Leak reports (not in this build: it is the scanner-only build).
    #[cfg(not(feature = "responder"))]
    Incidents(NotBuilt),
}

/// A responder command in the scanner-only build: whatever follows it is
/// taken, so the message below is what the user sees.
#[cfg(not(feature = "responder"))]
#[derive(Args)]
struct NotBuilt {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    args: Vec<String>,
}

/// What a scanner-only build says of a responder command.
#[cfg(not(feature = "responder"))]
fn not_built(command: &str) -> anyhow::Result<u8> {
    anyhow::bail!(
        "`keywarden {command}` is part of the responder, which this scanner-only build \
         leaves out (it is what the pre-commit hook and the Action build from source). \
         For the full build: cargo install --locked --path <keywarden checkout> \
         --features responder, or a release binary (those are full builds)"
    )
}

/// Flags shared by every command that loads rules.
#[derive(Args, Debug, Clone)]
pub struct ConfigArgs {
    /// Configuration file (rules to add, rules to disable, global
    /// allowlist). Default: `.keywarden.toml` at the scan root, if present.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Take `.keywarden.toml` and `.keywardenignore` from commit REV of the
    /// repository (its root), not from the files on disk: a pull request
    /// cannot then loosen the gate that checks it (the Action passes the
    /// base commit).
    #[arg(long, value_name = "REV", conflicts_with = "config")]
    pub config_from: Option<String>,
    /// Also find keys inside base64, percent-encoding and \\u/\\x escapes,
    /// nested this deep (2: base64 inside base64); 0 turns decoding off.
    #[arg(long, value_name = "N", default_value_t = 2,
          value_parser = clap::value_parser!(u8).range(0..=3))]
    pub max_decode_depth: u8,
    /// Scan archives (zip, jar, whl, tar, tar.gz/bz2/xz/zst…) as they are, not
    /// as their members.
    #[arg(long)]
    pub no_archives: bool,
    /// Open archives inside archives this deep (1: no nesting).
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u8).range(1..=8))]
    pub max_archive_depth: u8,
    /// What one archive may expand to; past it the rest is skipped with a
    /// warning (e.g. 5GiB, 100MB).
    #[arg(long, value_name = "SIZE", default_value = "5GiB", value_parser = crate::cli::scan_cmd::parse_size)]
    pub max_archive_bytes: u64,
    /// How many times the bytes read of an archive its members together may
    /// expand to (once past 1 MiB); past it, a compression bomb is
    /// supposed and the rest of the archive is skipped with a warning.
    /// Raise it for very repetitive logs.
    #[arg(long, value_name = "N", default_value_t = 200,
          value_parser = clap::value_parser!(u64).range(2..))]
    pub max_archive_ratio: u64,
}

impl ConfigArgs {
    /// The archive limits these flags ask for; `None` with --no-archives.
    pub fn archive_limits(&self) -> Option<keywarden::sources::archive::ArchiveLimits> {
        (!self.no_archives).then(|| keywarden::sources::archive::ArchiveLimits {
            max_depth: usize::from(self.max_archive_depth),
            max_bytes: self.max_archive_bytes,
            max_ratio: self.max_archive_ratio,
            ..Default::default()
        })
    }
}

/// Parses a duration such as `500ms`, `30s`, `5m` or `1h`.
#[cfg(feature = "responder")]
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (e.g. 500ms, 30s, 5m, 1h)"))
}

/// [`parse_duration`], refusing zero.
#[cfg(feature = "responder")]
pub fn parse_positive_duration(s: &str) -> Result<std::time::Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err("must be more than 0".to_string()),
        d => Ok(d),
    }
}

/// Where the service commands (`serve`, `outbox run`) log: stderr, filtered.
#[cfg(feature = "responder")]
#[derive(Args, Debug, Clone)]
pub struct LogArgs {
    /// Log filter (`info`, `debug`, `keywarden=debug,…`); logs go to stderr.
    #[arg(
        long,
        env = "KEYWARDEN_LOG",
        default_value = "info",
        value_name = "FILTER"
    )]
    pub log: String,
}

#[cfg(feature = "responder")]
impl LogArgs {
    /// Installs the process's log subscriber.
    pub fn init(&self) -> anyhow::Result<()> {
        use anyhow::Context;
        let filter = tracing_subscriber::EnvFilter::try_new(&self.log)
            .with_context(|| format!("bad --log filter {:?}", self.log))?;
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .init();
        Ok(())
    }
}

/// Runs the command line and returns the process exit code.
pub fn run() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_ERROR } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let result = match cli.command {
        Command::Scan(args) => scan_cmd::run(args),
        Command::History(args) => history_cmd::run(args),
        Command::Staged(args) => git_cmd::run_staged(args),
        Command::Hook(cmd) => git_cmd::run_hook(cmd),
        Command::Rules(cmd) => rules_cmd::run(cmd),
        #[cfg(feature = "responder")]
        Command::Keys(cmd) => keys_cmd::run(cmd),
        #[cfg(feature = "responder")]
        Command::Serve(args) => serve_cmd::run(*args),
        #[cfg(feature = "responder")]
        Command::Partner(cmd) => partner_cmd::run(cmd),
        #[cfg(feature = "responder")]
        Command::Outbox(cmd) => outbox_cmd::run(cmd),
        #[cfg(feature = "responder")]
        Command::Incidents(cmd) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(activity_cmd::incidents(cmd))),
        #[cfg(not(feature = "responder"))]
        Command::Keys(_) => not_built("keys"),
        #[cfg(not(feature = "responder"))]
        Command::Serve(_) => not_built("serve"),
        #[cfg(not(feature = "responder"))]
        Command::Partner(_) => not_built("partner"),
        #[cfg(not(feature = "responder"))]
        Command::Outbox(_) => not_built("outbox"),
        #[cfg(not(feature = "responder"))]
        Command::Incidents(_) => not_built("incidents"),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("keywarden: error: {}", error_text(&e));
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// An error and its causes, each said once, safe for a terminal. Many
/// libraries print their source inside their own message as well as
/// returning it as the source; a cause whose text is already in what has
/// been said is left out, so `a: b: b` reads `a: b`.
pub fn error_text(error: &anyhow::Error) -> String {
    let mut said = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        let text = text.trim();
        if text.is_empty() || said.contains(text) {
            continue;
        }
        if !said.is_empty() {
            said.push_str(": ");
        }
        said.push_str(text);
    }
    keywarden::untrusted::printable(&said).into_owned()
}

#[cfg(test)]
mod tests {
    use super::error_text;
    use anyhow::Context;

    /// Every flag and argument of every subcommand says what it is for.
    #[test]
    fn every_argument_has_help() {
        use clap::CommandFactory;
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if arg.is_hide_set() || id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_about().is_none() && sub.get_name() != "help" {
                    missing.push(format!("{path} {} (no about)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "keywarden", &mut missing);
        assert!(missing.is_empty(), "without help text: {missing:#?}");
    }

    /// A default is shown once, in words, not as clap's `[default: 0]`.
    #[test]
    fn defaults_are_said_once() {
        use clap::CommandFactory;
        let mut cmd = super::Cli::command();
        for sub in ["scan", "history"] {
            let help = cmd
                .find_subcommand_mut(sub)
                .expect("subcommand")
                .render_help()
                .to_string();
            assert!(help.contains("one per core"), "{sub}: {help}");
            assert!(!help.contains("[default: 0]"), "{sub}: {help}");
        }
    }

    #[test]
    fn each_cause_is_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone (os error 2)");
        // A cause that repeats its source in its own text, as thiserror's
        // `#[error("…: {0}")] X(#[from] E)` does.
        #[derive(Debug, thiserror::Error)]
        #[error("reading x: {0}")]
        struct Wrap(#[source] std::io::Error);
        let e = anyhow::Error::new(Wrap(io)).context("loading config.toml");
        assert_eq!(
            error_text(&e),
            "loading config.toml: reading x: gone (os error 2)"
        );
        let plain: anyhow::Result<()> = Err(anyhow::anyhow!("inner\x1b[2J"));
        let e = plain.context("outer").unwrap_err();
        assert_eq!(error_text(&e), r"outer: inner\u{1b}[2J");
    }
}
