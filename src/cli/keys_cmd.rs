//! `keywarden keys …`: the key lifecycle from the command line.

use super::keys_remote::{self, Remote};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use ipnet::IpNet;
use keywarden::keystore::{
    self, KeyHash, KeyRecord, KeySpec, KeyState, KeyStore, KeyType, KeyUpdate, ListFilter,
    Revocation, UpdateOutcome, rfc3339,
};
use serde_json::json;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

/// Where the key store is.
#[derive(Args, Debug, Clone)]
pub struct DatabaseArgs {
    /// Key store: `sqlite://FILE` (created if missing) or `postgres://…`.
    #[arg(
        long,
        env = "KEYWARDEN_DATABASE_URL",
        default_value = "sqlite://keywarden.db",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: String,
}

impl DatabaseArgs {
    /// Opens the store, creating it when it does not exist (for commands
    /// that make keys, and `serve`).
    pub async fn open(&self) -> anyhow::Result<Arc<dyn KeyStore>> {
        keystore::open_store(&self.database_url)
            .await
            .context("cannot open the key store")
    }

    /// Opens the store only if it exists (for commands about keys already
    /// made).
    pub async fn open_existing(&self) -> anyhow::Result<Arc<dyn KeyStore>> {
        match keystore::open_existing_store(&self.database_url).await {
            Err(e @ keystore::StoreError::NoStore(_)) => Err(e.into()),
            other => other.context("cannot open the key store"),
        }
    }
}

/// A running server to manage keys through instead of the database.
#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// Manage keys through the management API of the server at URL (e.g.
    /// `https://keys.example.com`) with the management key in
    /// `KEYWARDEN_MANAGEMENT_KEY`, instead of on the database;
    /// `--database-url` is then not used.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
}

impl ServerArgs {
    fn remote(&self) -> anyhow::Result<Option<Remote>> {
        self.server.as_deref().map(Remote::new).transpose()
    }
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create a key and print it (the only time it is shown).
    Create(CreateArgs),
    /// List keys.
    List {
        /// Only keys of this owner email.
        #[arg(long, value_name = "EMAIL")]
        owner: Option<String>,
        /// Only keys in this state.
        #[arg(long, value_parser = ["active", "revoked", "expired", "disabled"])]
        state: Option<String>,
        /// Output as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DatabaseArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Show one key.
    Show {
        /// The key's id (`key_…`, as `keys list` shows it).
        id: String,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DatabaseArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Turn a key off: it answers 401 until it is enabled again.
    Disable(SwitchArgs),
    /// Turn a disabled key on again (never a revoked one).
    Enable(SwitchArgs),
    /// Revoke a key by id, or the key read from stdin (`--key-stdin`).
    Revoke {
        /// The key's id (`kw_…`, as `keys list` shows it).
        #[arg(required_unless_present = "key_stdin", conflicts_with = "key_stdin")]
        id: Option<String>,
        /// Read the whole key from stdin and revoke the key with its hash.
        #[arg(long)]
        key_stdin: bool,
        /// Why the key is revoked.
        #[arg(long, default_value = "revoked by operator")]
        reason: String,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DatabaseArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Replace a key with a new one of the same settings.
    Rotate {
        /// The id of the key to replace.
        id: String,
        /// Keep the old key working this long (e.g. `1h`); default: revoke now.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        grace: Option<Duration>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DatabaseArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// What the usage log holds about a key: requests by outcome and by
    /// caller network (/24, /48), first and last seen.
    Activity(super::activity_cmd::ActivityArgs),
    /// Import an existing key inventory (CSV with a header line, or JSON
    /// Lines) holding whole keys (`key`, hashed on read) or SHA-256 hashes
    /// (`sha256`), with `name`, `owner_email` and optionally `type`, `team`,
    /// `scopes`, `allowed_ips`, `credit_limit`, `expires_at`, `label`.
    Import {
        /// The inventory file, or `-` for stdin.
        file: PathBuf,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DatabaseArgs,
    },
}

#[derive(Args)]
pub struct SwitchArgs {
    /// The key's id (`key_…`, as `keys list` shows it).
    id: String,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    db: DatabaseArgs,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Args)]
pub struct CreateArgs {
    /// Owner's email address.
    #[arg(long, value_name = "EMAIL")]
    owner: String,
    /// Owner's user id (default: the email).
    #[arg(long, value_name = "ID")]
    owner_id: Option<String>,
    /// A name for the key.
    #[arg(long)]
    name: String,
    /// standard, scoped, team, read-only or ephemeral.
    #[arg(long = "type", default_value = "standard", value_parser = parse_type)]
    key_type: KeyType,
    /// Allowed model pattern (scoped keys), e.g. `anthropic/*`; repeatable.
    #[arg(long = "scope", value_name = "PATTERN")]
    scopes: Vec<String>,
    /// Expiry: a duration from now (`30d`, `12h`) or an RFC 3339 time.
    #[arg(long, value_name = "WHEN", value_parser = parse_expiry)]
    expires: Option<Expiry>,
    /// Allowed client network (IPv4/IPv6 CIDR or address); repeatable.
    #[arg(long = "allow-ip", value_name = "CIDR", value_parser = keystore::parse_cidr)]
    allow_ips: Vec<IpNet>,
    /// Spending cap in credits.
    #[arg(long, value_name = "N")]
    credit_limit: Option<f64>,
    /// Reset the spending cap's count every day, week (Monday) or month
    /// (the 1st), at midnight UTC.
    #[arg(long, value_name = "WINDOW", value_parser = ["daily", "weekly", "monthly"])]
    limit_reset: Option<String>,
    /// A management key: for the management API (`/api/v1/keys`) and the
    /// key check only, never a model. Made on the database only.
    #[arg(long)]
    management: bool,
    /// Team (workspace) of a team key.
    #[arg(long)]
    team: Option<String>,
    /// Print the key and its record as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    db: DatabaseArgs,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Clone, Copy, Debug)]
enum Expiry {
    In(Duration),
    At(OffsetDateTime),
}

fn parse_type(s: &str) -> Result<KeyType, String> {
    s.parse().map_err(|e: keystore::SpecError| e.to_string())
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = super::parse_duration(s)?;
    Duration::try_from(d).map_err(|e| e.to_string())
}

fn parse_expiry(s: &str) -> Result<Expiry, String> {
    if let Ok(at) = OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Ok(Expiry::At(at));
    }
    parse_duration(s)
        .map(Expiry::In)
        .map_err(|_| format!("{s:?} is neither a duration (30d, 12h) nor an RFC 3339 time"))
}

pub fn run(cmd: KeysCommand) -> anyhow::Result<u8> {
    let now = OffsetDateTime::now_utc();
    if let Some(done) = run_remote(&cmd, now)? {
        return Ok(done);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_async(cmd, now))
}

/// Runs `cmd` through a server's management API when it names one
/// (`--server`); `None` when it is for the database.
fn run_remote(cmd: &KeysCommand, now: OffsetDateTime) -> anyhow::Result<Option<u8>> {
    let server = match cmd {
        KeysCommand::Create(a) => &a.server,
        KeysCommand::List { server, .. }
        | KeysCommand::Show { server, .. }
        | KeysCommand::Revoke { server, .. }
        | KeysCommand::Rotate { server, .. } => server,
        KeysCommand::Disable(a) | KeysCommand::Enable(a) => &a.server,
        KeysCommand::Import { .. } | KeysCommand::Activity(_) => return Ok(None),
    };
    let Some(remote) = server.remote()? else {
        return Ok(None);
    };
    match cmd {
        KeysCommand::Create(args) => {
            if args.management {
                bail!("management keys are made on the database only (without --server)");
            }
            let spec = spec_of(args, now)?;
            spec.validate(now)?;
            let made = remote.create(&json!({
                "name": spec.name,
                "owner_email": spec.owner_email,
                "creator_user_id": spec.owner_id,
                "type": spec.key_type,
                "scopes": spec.scopes,
                "team": spec.team,
                "allowed_ips": spec.allowed_ips,
                "limit": spec.credit_limit,
                "limit_reset": spec.limit_reset,
                "expires_at": spec.expires_at.map(rfc3339),
            }))?;
            if args.json {
                print_json(&made)?;
            } else {
                eprintln!(
                    "Created {} through {}.",
                    keys_remote::field(&made["record"], "id"),
                    server_shown(server)
                );
                eprintln!("This is the only time the key is shown; store it now:");
                println!("{}", keys_remote::field(&made, "key"));
            }
        }
        KeysCommand::List {
            owner, state, json, ..
        } => {
            let keys: Vec<serde_json::Value> = remote
                .list()?
                .into_iter()
                .filter(|k| owner.as_ref().is_none_or(|o| k["owner_email"] == **o))
                .filter(|k| state.as_ref().is_none_or(|s| k["state"] == **s))
                .collect();
            if *json {
                print_json(&json!(keys))?;
            } else {
                keys_remote::print_table(&keys)?;
            }
        }
        KeysCommand::Show { id, json, .. } => {
            let key = remote.show(id)?;
            if *json {
                print_json(&key)?;
            } else {
                keys_remote::print_details(&key)?;
            }
        }
        KeysCommand::Disable(a) | KeysCommand::Enable(a) => {
            let disable = matches!(cmd, KeysCommand::Disable(_));
            let key = remote.set_disabled(&a.id, disable)?;
            if a.json {
                print_json(&key)?;
            } else {
                println!(
                    "{} is {}",
                    keys_remote::field(&key, "id"),
                    keys_remote::field(&key, "state")
                );
            }
        }
        KeysCommand::Rotate {
            id, grace, json, ..
        } => {
            let rotated = remote.rotate(id, grace.unwrap_or(Duration::ZERO).whole_seconds())?;
            if *json {
                print_json(&rotated)?;
            } else {
                eprintln!(
                    "Rotated {id} to {}. The old key stops working at {}.",
                    keys_remote::field(&rotated["record"], "id"),
                    keys_remote::field(&rotated, "old_revoked_at")
                );
                eprintln!("The new key is shown only now; store it:");
                println!("{}", keys_remote::field(&rotated, "key"));
            }
        }
        KeysCommand::Revoke {
            id, reason, json, ..
        } => {
            let id = match id {
                Some(id) => id.clone(),
                None => key_from_stdin()?.1.to_hex(),
            };
            let done = remote.revoke(&id, reason)?;
            if *json {
                print_json(&done)?;
            } else {
                println!(
                    "{} {}",
                    keys_remote::field(&done, "outcome"),
                    keys_remote::field(&done["record"], "id")
                );
            }
        }
        // Import and activity work on the database only (no --server).
        KeysCommand::Import { .. } | KeysCommand::Activity(_) => return Ok(None),
    }
    Ok(Some(0))
}

fn server_shown(server: &ServerArgs) -> String {
    keywarden::untrusted::one_line(server.server.as_deref().unwrap_or_default(), 100)
}

async fn run_async(cmd: KeysCommand, now: OffsetDateTime) -> anyhow::Result<u8> {
    match cmd {
        KeysCommand::Create(args) => create(args, now).await,
        KeysCommand::Activity(args) => super::activity_cmd::activity(args, now).await,
        KeysCommand::List {
            owner,
            state,
            json,
            db,
            server: _,
        } => {
            let filter = ListFilter {
                owner_email: owner,
                state: state
                    .map(|s| s.parse())
                    .transpose()
                    .map_err(anyhow::Error::msg)?,
            };
            let keys = db.open_existing().await?.list(&filter, now).await?;
            if json {
                let views: Vec<_> = keys.iter().map(|k| view(k, now)).collect();
                print_json(&json!(views))?;
            } else {
                print_table(&keys, now)?;
            }
            Ok(0)
        }
        KeysCommand::Show { id, json, db, .. } => {
            let Some(key) = db.open_existing().await?.get(&id).await? else {
                bail!("no key with id {id:?}");
            };
            if json {
                print_json(&view(&key, now))?;
            } else {
                print_details(&key, now)?;
            }
            Ok(0)
        }
        KeysCommand::Disable(args) => switch(args, true, now).await,
        KeysCommand::Enable(args) => switch(args, false, now).await,
        KeysCommand::Revoke {
            id,
            reason,
            json,
            db,
            ..
        } => {
            let store = db.open_existing().await?;
            let id = match id {
                Some(id) => id,
                None => id_from_stdin(&*store).await?,
            };
            let outcome = store.revoke(&id, &reason, now).await?;
            report_revocation(&outcome, json, now)?;
            Ok(0)
        }
        KeysCommand::Rotate {
            id,
            grace,
            json,
            db,
            ..
        } => {
            let store = db.open_existing().await?;
            let rotation =
                keystore::rotate_key(&*store, &id, grace.unwrap_or(Duration::ZERO), now).await?;
            let key = String::from_utf8_lossy(rotation.key.expose()).into_owned();
            if json {
                print_json(&json!({
                    "key": key,
                    "record": view(&rotation.new, now),
                    "old_id": rotation.old_id,
                    "old_revoked_at": rfc3339(rotation.old_revoked_at),
                }))?;
            } else {
                eprintln!(
                    "Rotated {} to {} ({}). The old key stops working at {}.",
                    rotation.old_id,
                    rotation.new.id,
                    rotation.new.label,
                    rfc3339(rotation.old_revoked_at)
                );
                eprintln!("The new key is shown only now; store it:");
                println!("{key}");
            }
            Ok(0)
        }
        KeysCommand::Import { file, json, db } => import(&file, json, &db, now).await,
    }
}

/// `keys disable|enable` on the database.
async fn switch(args: SwitchArgs, disable: bool, now: OffsetDateTime) -> anyhow::Result<u8> {
    let store = args.db.open_existing().await?;
    let update = KeyUpdate {
        disabled: Some(disable),
        ..KeyUpdate::default()
    };
    match store.update(&args.id, &update, "cli", now).await? {
        UpdateOutcome::Updated(record) => {
            if args.json {
                print_json(&view(&record, now))?;
            } else {
                println!(
                    "{} ({}) is {}",
                    record.id,
                    record.label,
                    state_text(&record, now)
                );
            }
            Ok(0)
        }
        UpdateOutcome::NotFound => bail!("no key with id {:?}", args.id),
        UpdateOutcome::Revoked(record) => bail!(
            "{} was revoked ({}) and can never be enabled again; create a new key instead",
            record.id,
            keywarden::untrusted::one_line(
                record
                    .revocation_reason
                    .as_deref()
                    .unwrap_or("no reason given"),
                120
            )
        ),
    }
}

/// The key to make, from `keys create`'s flags.
fn spec_of(args: &CreateArgs, now: OffsetDateTime) -> anyhow::Result<KeySpec> {
    Ok(KeySpec {
        name: args.name.clone(),
        owner_id: args.owner_id.clone().unwrap_or_else(|| args.owner.clone()),
        owner_email: args.owner.clone(),
        team: args.team.clone(),
        key_type: args.key_type,
        scopes: args.scopes.clone(),
        credit_limit: args.credit_limit,
        expires_at: args.expires.map(|e| match e {
            Expiry::In(d) => now + d,
            Expiry::At(at) => at,
        }),
        allowed_ips: args.allow_ips.clone(),
        management: args.management,
        limit_reset: args.limit_reset.as_deref().map(str::parse).transpose()?,
        include_byok_in_limit: false,
    })
}

async fn create(args: CreateArgs, now: OffsetDateTime) -> anyhow::Result<u8> {
    let spec = spec_of(&args, now)?;
    spec.validate(now)?;
    let store = args.db.open().await?;
    let (key, record) = keystore::create_key(&*store, spec, now).await?;
    let text = String::from_utf8_lossy(key.expose()).into_owned();
    if args.json {
        print_json(&json!({ "key": text, "record": view(&record, now) }))?;
    } else {
        eprintln!(
            "Created {}{} \"{}\" ({}, {} requests/min) for {}.",
            if record.management {
                "management key "
            } else {
                ""
            },
            record.id,
            record.name,
            record.key_type,
            record.key_type.requests_per_minute(),
            record.owner_email
        );
        eprintln!("This is the only time the key is shown; store it now:");
        println!("{text}");
    }
    Ok(0)
}

/// Reads a whole key from stdin: the key and its hash.
fn key_from_stdin() -> anyhow::Result<(keywarden::secret::Secret, KeyHash)> {
    let mut input = String::new();
    std::io::stdin()
        .take(4096)
        .read_to_string(&mut input)
        .context("cannot read the key from stdin")?;
    let key = keywarden::secret::Secret::new(input.trim());
    if !keystore::looks_like_key(key.expose()) {
        bail!("stdin does not hold an OpenRouter key (sk-or-v1- + 64 lowercase hex)");
    }
    let hash = KeyHash::of(key.expose());
    Ok((key, hash))
}

/// Reads a whole key from stdin and finds its record by hash.
async fn id_from_stdin(store: &dyn KeyStore) -> anyhow::Result<String> {
    let (key, hash) = key_from_stdin()?;
    match store.find_by_hash(&hash).await? {
        Some(record) => Ok(record.id),
        None => bail!("the key {} is not in the store", key.redacted()),
    }
}

fn report_revocation(outcome: &Revocation, json: bool, now: OffsetDateTime) -> anyhow::Result<()> {
    let record = outcome.record();
    let already = matches!(outcome, Revocation::AlreadyRevoked(_));
    if json {
        return print_json(&json!({
            "outcome": if already { "already_revoked" } else { "revoked" },
            "record": view(record, now),
        }));
    }
    let at = record.revoked_at.map(rfc3339).unwrap_or_default();
    if already {
        println!(
            "{} ({}) was already revoked at {at}",
            record.id, record.label
        );
    } else {
        println!("revoked {} ({}) at {at}", record.id, record.label);
    }
    Ok(())
}

async fn import(
    file: &PathBuf,
    json: bool,
    db: &DatabaseArgs,
    now: OffsetDateTime,
) -> anyhow::Result<u8> {
    let mut text = String::new();
    if file.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text)
    } else {
        std::fs::File::open(file).and_then(|mut f| f.read_to_string(&mut text))
    }
    .with_context(|| format!("cannot read {}", file.display()))?;
    let rows = keystore::parse_import(&text).with_context(|| format!("{}", file.display()))?;
    let store = db.open().await?;
    let outcome = keystore::import_keys(&*store, rows, now).await?;
    if json {
        print_json(
            &json!({ "imported": outcome.imported, "duplicate_lines": outcome.duplicates }),
        )?;
    } else {
        println!(
            "imported {} keys; {} already in the store (lines {:?})",
            outcome.imported.len(),
            outcome.duplicates.len(),
            outcome.duplicates
        );
    }
    Ok(0)
}

fn view(r: &KeyRecord, now: OffsetDateTime) -> serde_json::Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    v["state"] = json!(r.state(now));
    v["rate_limit_per_minute"] = json!(r.key_type.requests_per_minute());
    v
}

fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    super::output::write_json_ascii(&mut std::io::stdout().lock(), value)?;
    Ok(())
}

fn state_text(r: &KeyRecord, now: OffsetDateTime) -> String {
    match (r.state(now), r.revoked_at) {
        (KeyState::Active, Some(at)) => format!("active (revokes {})", rfc3339(at)),
        (KeyState::Disabled, _) => format!(
            "disabled ({}, {})",
            r.disabled_by.as_deref().unwrap_or("?"),
            r.disabled_at.map(rfc3339).unwrap_or_default()
        ),
        (state, _) => state.to_string(),
    }
}

fn print_table(keys: &[KeyRecord], now: OffsetDateTime) -> anyhow::Result<()> {
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|k| {
            vec![
                k.id.clone(),
                k.name.clone(),
                k.owner_email.clone(),
                if k.management {
                    format!("{} (management)", k.key_type)
                } else {
                    k.key_type.to_string()
                },
                k.label.clone(),
                state_text(k, now),
                k.expires_at.map(rfc3339).unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let header = ["ID", "NAME", "OWNER", "TYPE", "LABEL", "STATE", "EXPIRES"];
    super::output::write_table(&mut std::io::stdout().lock(), &header, &rows)?;
    Ok(())
}

fn print_details(k: &KeyRecord, now: OffsetDateTime) -> anyhow::Result<()> {
    let opt = |t: Option<OffsetDateTime>| t.map(rfc3339).unwrap_or_else(|| "-".into());
    let list = |v: &[String]| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(", ")
        }
    };
    let ips: Vec<String> = k.allowed_ips.iter().map(ToString::to_string).collect();
    let mut out = std::io::stdout().lock();
    let fields = [
        ("id", k.id.clone()),
        ("name", k.name.clone()),
        ("label", k.label.clone()),
        ("owner", format!("{} ({})", k.owner_email, k.owner_id)),
        ("team", k.team.clone().unwrap_or_else(|| "-".into())),
        ("type", k.key_type.to_string()),
        (
            "management",
            if k.management {
                "yes (no models)"
            } else {
                "no"
            }
            .into(),
        ),
        (
            "rate limit",
            format!("{} requests/min", k.key_type.requests_per_minute()),
        ),
        ("scopes", list(&k.scopes)),
        ("allowed IPs", list(&ips)),
        (
            "credit limit",
            k.credit_limit.map_or("-".into(), |l| l.to_string()),
        ),
        (
            "limit reset",
            k.limit_reset.map_or("-".into(), |r| r.to_string()),
        ),
        ("usage", k.usage.to_string()),
        ("state", state_text(k, now)),
        ("created", rfc3339(k.created_at)),
        ("last used", opt(k.last_used_at)),
        ("expires", opt(k.expires_at)),
        ("revoked", opt(k.revoked_at)),
        (
            "reason",
            k.revocation_reason.clone().unwrap_or_else(|| "-".into()),
        ),
        ("sha256", k.key_hash.to_hex()),
    ];
    for (name, value) in fields {
        let value = keywarden::untrusted::printable(&value);
        writeln!(out, "{name:<13}{value}")?;
    }
    Ok(())
}
