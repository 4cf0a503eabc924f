//! Key lifecycle on top of a [`KeyStore`]: creation (the only moment a
//! whole key exists), rotation and importing an existing inventory.

use super::generate::KEY_PREFIX;
use super::{KeyHash, KeyRecord, KeySpec, KeyState, KeyStore, KeyType, StoreError, generate_key};
use crate::secret::Secret;
use ipnet::IpNet;
use serde::Deserialize;
use time::{Duration, OffsetDateTime};

/// A fresh record id: `key_` + 12 random hex digits.
fn new_id() -> Result<String, StoreError> {
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).map_err(|e| StoreError::Random(e.to_string()))?;
    Ok(format!("key_{}", hex::encode(bytes)))
}

/// The store keeps whole seconds; so does every record handed out.
fn whole_seconds(at: OffsetDateTime) -> OffsetDateTime {
    at.replace_nanosecond(0).unwrap_or(at)
}

fn record_for(
    spec: KeySpec,
    hash: KeyHash,
    label: String,
    now: OffsetDateTime,
) -> Result<KeyRecord, StoreError> {
    Ok(KeyRecord {
        id: new_id()?,
        name: spec.name,
        owner_id: spec.owner_id,
        owner_email: spec.owner_email,
        team: spec.team,
        key_type: spec.key_type,
        scopes: spec.scopes,
        credit_limit: spec.credit_limit,
        usage: 0.0,
        expires_at: spec.expires_at.map(whole_seconds),
        allowed_ips: spec.allowed_ips,
        created_at: whole_seconds(now),
        last_used_at: None,
        revoked_at: None,
        revocation_reason: None,
        label,
        key_hash: hash,
        management: spec.management,
        limit_reset: spec.limit_reset,
        include_byok_in_limit: spec.include_byok_in_limit,
        disabled_at: None,
        disabled_by: None,
        updated_at: None,
        deleted_at: None,
        window_usage: super::WindowUsage::default(),
    })
}

/// Issues a new key: validates `spec`, generates the key, stores its hash
/// and label. The returned [`Secret`] is the only copy of the key.
pub async fn create_key(
    store: &dyn KeyStore,
    spec: KeySpec,
    now: OffsetDateTime,
) -> Result<(Secret, KeyRecord), StoreError> {
    spec.validate(now)?;
    let key = generate_key()?;
    let record = record_for(spec, KeyHash::of(key.expose()), key.redacted(), now)?;
    store.insert(&record).await?;
    Ok((key, record))
}

/// A completed rotation.
#[derive(Debug)]
pub struct Rotation {
    pub key: Secret,
    pub new: KeyRecord,
    pub old_id: String,
    /// When the old key stops working.
    pub old_revoked_at: OffsetDateTime,
}

/// Replaces key `id` with a new key of the same settings; the old key is
/// revoked at `now + grace`, in the same transaction as the new key's
/// insertion.
pub async fn rotate_key(
    store: &dyn KeyStore,
    id: &str,
    grace: Duration,
    now: OffsetDateTime,
) -> Result<Rotation, StoreError> {
    let now = whole_seconds(now);
    let old = store
        .get(id)
        .await?
        .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
    if old.state(now) != KeyState::Active {
        return Err(StoreError::NotRotatable {
            id: id.to_string(),
            reason: format!("it is {}; create a new key instead", old.state(now)),
        });
    }
    let spec = KeySpec {
        name: old.name.clone(),
        owner_id: old.owner_id.clone(),
        owner_email: old.owner_email.clone(),
        team: old.team.clone(),
        key_type: old.key_type,
        scopes: old.scopes.clone(),
        credit_limit: old.credit_limit,
        expires_at: old.expires_at,
        allowed_ips: old.allowed_ips.clone(),
        management: old.management,
        limit_reset: old.limit_reset,
        include_byok_in_limit: old.include_byok_in_limit,
    };
    // A key made before owners and names were checked is not copied into
    // a new one as it was: its leak email could go to someone else.
    spec.validate(now)?;
    let key = generate_key()?;
    let mut new = record_for(spec, KeyHash::of(key.expose()), key.redacted(), now)?;
    // The twin spends from the same credit limit.
    new.usage = old.usage;
    new.window_usage = old.window_usage;
    let old_revoked_at = now + grace.max(Duration::ZERO);
    store.rotate(&old.id, &new, old_revoked_at).await?;
    Ok(Rotation {
        key,
        new,
        old_id: old.id,
        old_revoked_at,
    })
}

/// One key of an inventory being imported: its hash, never the key.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportRow {
    pub line: usize,
    pub hash: KeyHash,
    pub label: String,
    pub spec: KeySpec,
    pub created_at: Option<OffsetDateTime>,
}

/// The fields an inventory line may carry (CSV header names or JSON keys).
#[derive(Deserialize)]
struct RawRow {
    #[serde(default)]
    key: Option<String>,
    #[serde(default, alias = "hash", alias = "key_hash")]
    sha256: Option<String>,
    #[serde(default)]
    label: Option<String>,
    name: String,
    #[serde(alias = "owner", alias = "email")]
    owner_email: String,
    #[serde(default)]
    owner_id: Option<String>,
    #[serde(default, rename = "type")]
    key_type: Option<String>,
    #[serde(default)]
    team: Option<String>,
    #[serde(default)]
    scopes: Option<ListField>,
    #[serde(default)]
    allowed_ips: Option<ListField>,
    #[serde(default)]
    credit_limit: Option<f64>,
    #[serde(default)]
    expires_at: Option<String>,
    #[serde(default)]
    created_at: Option<String>,
}

/// A list given as a JSON array or as text separated by `;`, `,` or spaces.
#[derive(Deserialize)]
#[serde(untagged)]
enum ListField {
    List(Vec<String>),
    Text(String),
}

impl ListField {
    fn items(self) -> Vec<String> {
        match self {
            ListField::List(v) => v,
            ListField::Text(t) => t
                .split([';', ',', ' '])
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        }
    }
}

/// Replaces long hex runs (a key's body, a hash) in parser messages, which
/// may quote the offending value.
fn scrub(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut run = String::new();
    for c in message.chars().chain(std::iter::once('\0')) {
        if c.is_ascii_hexdigit() {
            run.push(c);
            continue;
        }
        if run.len() >= 16 {
            out.push_str("***");
        } else {
            out.push_str(&run);
        }
        run.clear();
        if c != '\0' {
            out.push(c);
        }
    }
    out
}

fn parse_time(line: usize, field: &str, text: &str) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339).map_err(
        |e| StoreError::Import {
            line,
            reason: format!("{field}: {e} (want RFC 3339, e.g. 2027-01-31T00:00:00Z)"),
        },
    )
}

impl RawRow {
    fn into_row(self, line: usize) -> Result<ImportRow, StoreError> {
        let err = |reason: String| StoreError::Import { line, reason };
        let (hash, label) = match (self.key, self.sha256) {
            (Some(key), None) => {
                let key = Secret::new(key.trim());
                if !super::looks_like_key(key.expose()) {
                    return Err(err(format!(
                        "`key` is not an OpenRouter key ({KEY_PREFIX} + 64 lowercase hex)"
                    )));
                }
                (
                    KeyHash::of(key.expose()),
                    self.label.unwrap_or_else(|| key.redacted()),
                )
            }
            (None, Some(hash)) => {
                let hash = KeyHash::from_hex(&hash)
                    .ok_or_else(|| err("`sha256` is not 64 hex digits".to_string()))?;
                (
                    hash,
                    self.label.unwrap_or_else(|| format!("{KEY_PREFIX}...")),
                )
            }
            (Some(_), Some(_)) => return Err(err("give `key` or `sha256`, not both".into())),
            (None, None) => return Err(err("each line needs `key` or `sha256`".into())),
        };
        if super::looks_like_key(label.as_bytes()) {
            return Err(err("`label` holds a whole key; give its label".into()));
        }
        super::model::check_text("label", &label).map_err(|e| err(e.to_string()))?;
        let key_type = match self.key_type.as_deref().map(str::trim) {
            None | Some("") => KeyType::Standard,
            Some(t) => t
                .parse()
                .map_err(|e: super::SpecError| err(e.to_string()))?,
        };
        let allowed_ips = self
            .allowed_ips
            .map(ListField::items)
            .unwrap_or_default()
            .iter()
            .map(|s| parse_cidr(s).map_err(&err))
            .collect::<Result<Vec<_>, _>>()?;
        let non_empty = |s: Option<String>| s.filter(|s| !s.trim().is_empty());
        let spec = KeySpec {
            name: self.name,
            owner_id: non_empty(self.owner_id).unwrap_or_else(|| self.owner_email.clone()),
            owner_email: self.owner_email,
            team: non_empty(self.team),
            key_type,
            scopes: self.scopes.map(ListField::items).unwrap_or_default(),
            credit_limit: self.credit_limit,
            expires_at: non_empty(self.expires_at)
                .map(|t| parse_time(line, "expires_at", &t))
                .transpose()?,
            allowed_ips,
            ..KeySpec::new(String::new(), String::new())
        };
        // An inventory may hold keys that have already expired: only the
        // expiry-in-the-future rule is waived.
        spec.validate(OffsetDateTime::UNIX_EPOCH)
            .map_err(|e| err(e.to_string()))?;
        Ok(ImportRow {
            line,
            hash,
            label,
            spec,
            created_at: non_empty(self.created_at)
                .map(|t| parse_time(line, "created_at", &t))
                .transpose()?,
        })
    }
}

/// Parses an IPv4/IPv6 CIDR, or a bare address as a single-host network.
pub fn parse_cidr(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| {
            format!("{text:?} is not an IP address or CIDR (e.g. 203.0.113.0/24, 2001:db8::/32)")
        })
}

/// Parses an inventory: JSON Lines when the first non-blank character is
/// `{`, CSV with a header line otherwise. Any bad line fails the whole
/// import, naming the line, before anything is written.
pub fn parse_import(text: &str) -> Result<Vec<ImportRow>, StoreError> {
    let jsonl = text.trim_start().starts_with('{');
    let mut rows = Vec::new();
    if jsonl {
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let raw: RawRow = serde_json::from_str(line).map_err(|e| StoreError::Import {
                line: i + 1,
                reason: scrub(&e.to_string()),
            })?;
            rows.push(raw.into_row(i + 1)?);
        }
    } else {
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        let headers = reader
            .headers()
            .map_err(|e| StoreError::Import {
                line: 1,
                reason: scrub(&e.to_string()),
            })?
            .clone();
        for record in reader.records() {
            let fail = |line: usize, e: csv::Error| StoreError::Import {
                line,
                reason: scrub(&e.to_string()),
            };
            let record = record.map_err(|e| {
                let line = e.position().map_or(0, |p| p.line() as usize);
                fail(line, e)
            })?;
            let line = record.position().map_or(0, |p| p.line() as usize);
            let raw: RawRow = record
                .deserialize(Some(&headers))
                .map_err(|e| fail(line, e))?;
            rows.push(raw.into_row(line)?);
        }
    }
    Ok(rows)
}

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportOutcome {
    pub imported: Vec<String>,
    /// Lines whose key was already in the store (by hash): left as they are.
    pub duplicates: Vec<usize>,
}

/// Stores parsed inventory rows; a key already present is skipped, so an
/// import can be repeated.
pub async fn import_keys(
    store: &dyn KeyStore,
    rows: Vec<ImportRow>,
    now: OffsetDateTime,
) -> Result<ImportOutcome, StoreError> {
    let mut outcome = ImportOutcome::default();
    for row in rows {
        let created = row.created_at.unwrap_or(now);
        let record = record_for(row.spec, row.hash, row.label, created)?;
        match store.insert(&record).await {
            Ok(()) => outcome.imported.push(record.id),
            Err(StoreError::Duplicate(_)) => outcome.duplicates.push(row.line),
            Err(e) => return Err(e),
        }
    }
    Ok(outcome)
}

/// A record to test the model with.
#[cfg(test)]
pub(super) fn tests_record() -> KeyRecord {
    let spec = KeySpec::new("test", "dev@example.com");
    let key = generate_key().expect("random");
    record_for(
        spec,
        KeyHash::of(key.expose()),
        key.redacted(),
        OffsetDateTime::UNIX_EPOCH,
    )
    .expect("record")
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "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";

    #[test]
    fn csv_inventory_hashes_whole_keys_on_read() {
        let text = format!(
            "key,name,owner_email,type,scopes\n{KEY},prod,ops@example.com,scoped,anthropic/*;openai/gpt-4o\n"
        );
        let rows = parse_import(&text).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].hash, KeyHash::of(KEY.as_bytes()));
        assert_eq!(rows[0].label, "sk-or-v1-0e6...c96");
        assert_eq!(rows[0].spec.scopes, ["anthropic/*", "openai/gpt-4o"]);
        assert!(!format!("{rows:?}").contains(&KEY[9..]));
    }

    #[test]
    fn jsonl_inventory_takes_hashes() {
        let hash = KeyHash::of(KEY.as_bytes()).to_hex();
        let text = format!(
            "{{\"sha256\":\"{hash}\",\"name\":\"a\",\"owner_email\":\"a@b.io\",\"label\":\"sk-or-v1-0e6...c96\"}}\n"
        );
        let rows = parse_import(&text).unwrap();
        assert_eq!(rows[0].hash.to_hex(), hash);
        assert_eq!(rows[0].label, "sk-or-v1-0e6...c96");
    }

    #[test]
    fn bad_line_is_named_and_never_echoes_the_key() {
        let text =
            format!("key,name,owner_email,credit_limit\n{KEY},a,a@b.io,1\nnot-a-key,b,b@b.io,1\n");
        let err = parse_import(&text).unwrap_err().to_string();
        assert!(err.contains("line 3"), "{err}");
        let text = format!("key,name,owner_email,credit_limit\nx,a,a@b.io,{KEY}\n");
        let err = parse_import(&text).unwrap_err().to_string();
        assert!(!err.contains(&KEY[9..30]), "{err}");
    }
}
