//! `keys activity` and `incidents`: what the usage log says about a key,
//! and who tried a leaked key after it was revoked.

use super::keys_cmd::DatabaseArgs;
use super::output::write_json_ascii;
use anyhow::bail;
use clap::{Args, Subcommand};
use keywarden::keystore::{Incident, KeyRecord, UsageSummary, rfc3339};
use keywarden::untrusted::one_line;
use serde_json::json;
use std::io::Write;
use time::OffsetDateTime;

#[derive(Args)]
pub struct ActivityArgs {
    /// The key's id (`key_…`, as `keys list` shows it).
    id: String,
    /// How far back (e.g. `1h`, `24h`, `7d`).
    #[arg(long, default_value = "24h", value_name = "DURATION", value_parser = super::parse_duration)]
    since: std::time::Duration,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    db: DatabaseArgs,
}

#[derive(Subcommand)]
pub enum IncidentsCommand {
    /// Leak reports recorded, newest first.
    List {
        /// Only this key's.
        #[arg(long, value_name = "ID")]
        key: Option<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// One incident, and who tried the key after it was revoked: attempts,
    /// their networks, first and last.
    Show {
        /// The incident's number (`incidents list`).
        id: i64,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DatabaseArgs,
    },
}

/// Text from a key record or a report, as one capped line.
fn shown(text: &str) -> String {
    one_line(text, 200)
}

pub async fn activity(args: ActivityArgs, now: OffsetDateTime) -> anyhow::Result<u8> {
    let store = args.db.open_existing().await?;
    let Some(key) = store.get(&args.id).await? else {
        bail!("no key with id {:?}", one_line(&args.id, 80));
    };
    let since = time::Duration::try_from(args.since)
        .ok()
        .and_then(|d| now.checked_sub(d))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let summary = store.usage_summary(&key.id, since, false).await?;
    if args.json {
        let out = json!({
            "key": key_json(&key),
            "since": rfc3339(since),
            "activity": summary,
        });
        write_json_ascii(&mut std::io::stdout().lock(), &out)?;
        return Ok(0);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{} \"{}\" ({}): {} requests since {}",
        key.id,
        shown(&key.name),
        key.label,
        summary.requests,
        rfc3339(since)
    )?;
    print_summary(&mut out, &summary)?;
    Ok(0)
}

pub async fn incidents(cmd: IncidentsCommand) -> anyhow::Result<u8> {
    match cmd {
        IncidentsCommand::List { key, json, db } => {
            let list = db.open_existing().await?.incidents(key.as_deref()).await?;
            if json {
                let v = serde_json::to_value(&list)?;
                write_json_ascii(&mut std::io::stdout().lock(), &v)?;
                return Ok(0);
            }
            let mut out = std::io::stdout().lock();
            if list.is_empty() {
                writeln!(out, "no incidents")?;
            }
            for i in &list {
                writeln!(
                    out,
                    "{:>6}  {}  {:<8}  {}  {}  {}",
                    i.id,
                    rfc3339(i.reported_at),
                    i.kind,
                    i.key_id,
                    shown(&i.source),
                    shown(i.url.as_deref().unwrap_or("-"))
                )?;
            }
            Ok(0)
        }
        IncidentsCommand::Show { id, json, db } => {
            let store = db.open_existing().await?;
            let Some(incident) = store.incident(id).await? else {
                bail!("no incident {id} (see keywarden incidents list)");
            };
            let Some(key) = store.get(&incident.key_id).await? else {
                bail!(
                    "incident {id} names key {}, which is not in the store",
                    incident.key_id
                );
            };
            // Attempts after the revocation: refused checks from the key's
            // revocation on (or the report's time, for a sighting of a key
            // revoked otherwise).
            let since = key.revoked_at.unwrap_or(incident.reported_at);
            let after = store.usage_summary(&key.id, since, true).await?;
            if json {
                let out = json!({
                    "incident": incident,
                    "key": key_json(&key),
                    "after_revocation": after,
                });
                write_json_ascii(&mut std::io::stdout().lock(), &out)?;
                return Ok(0);
            }
            print_incident(&incident, &key, since, &after)?;
            Ok(0)
        }
    }
}

fn key_json(key: &KeyRecord) -> serde_json::Value {
    json!({
        "id": key.id,
        "name": key.name,
        "label": key.label,
        "owner_email": key.owner_email,
        "revoked_at": key.revoked_at.map(rfc3339),
        "revocation_reason": key.revocation_reason,
    })
}

fn print_incident(
    i: &Incident,
    key: &KeyRecord,
    since: OffsetDateTime,
    after: &UsageSummary,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let fields = [
        ("incident", i.id.to_string()),
        ("kind", i.kind.clone()),
        ("reported", rfc3339(i.reported_at)),
        ("reporter", shown(&i.reporter)),
        ("token type", shown(&i.token_type)),
        ("source", shown(&i.source)),
        ("url", shown(i.url.as_deref().unwrap_or("-"))),
        (
            "key",
            format!("{} \"{}\" ({})", key.id, shown(&key.name), key.label),
        ),
        ("owner", shown(&key.owner_email)),
        ("revoked", key.revoked_at.map_or("-".to_string(), rfc3339)),
    ];
    for (name, value) in fields {
        writeln!(out, "{name:<12}{value}")?;
    }
    writeln!(
        out,
        "\nafter revocation (from {}): {} attempts from {} networks",
        rfc3339(since),
        after.requests,
        after.networks
    )?;
    print_summary(&mut out, after)
}

fn print_summary(out: &mut impl Write, s: &UsageSummary) -> anyhow::Result<()> {
    if let (Some(first), Some(last)) = (s.first, s.last) {
        writeln!(out, "first {}, last {}", rfc3339(first), rfc3339(last))?;
    }
    for (title, counts) in [("by outcome", &s.by_outcome), ("by network", &s.by_network)] {
        if counts.is_empty() {
            continue;
        }
        writeln!(out, "{title}:")?;
        for c in counts {
            writeln!(
                out,
                "  {:<24} {:>8}  first {}  last {}",
                c.name,
                c.requests,
                rfc3339(c.first),
                rfc3339(c.last)
            )?;
        }
    }
    if s.networks > s.by_network.len() as i64 {
        writeln!(
            out,
            "  … and {} more networks",
            s.networks - s.by_network.len() as i64
        )?;
    }
    Ok(())
}
