//! A finding: one secret of one rule at one place.

use crate::provenance::CommitInfo;
use crate::rules::Severity;
use crate::secret::Secret;
use std::sync::Arc;

/// One reported secret.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub rule_id: String,
    pub description: String,
    pub severity: Severity,
    /// Path as reported (relative to where the scan ran, or the stdin name).
    pub path: String,
    /// 1-based line of the secret's first character.
    pub line: u64,
    /// 1-based column (in characters) of the secret's first character.
    pub column: u64,
    /// 1-based line of the secret's last character.
    pub end_line: u64,
    /// 1-based column of the secret's last character (inclusive).
    pub end_column: u64,
    pub secret: Secret,
    /// `rule:path:sha256(secret)`: stable when the line moves.
    pub fingerprint: String,
    /// The file looked binary (a NUL byte near its start).
    pub binary: bool,
    /// For git sources: the commit the secret is attributed to (None for a
    /// blob no commit reaches).
    pub commit: Option<Arc<CommitInfo>>,
    /// For git sources: the blob holding the secret.
    pub blob: Option<crate::sources::BlobId>,
    /// Whether the secret still works, when `--verify` asked.
    pub verification: Option<Liveness>,
    /// How the secret was encoded where it was found, from the outside in
    /// (`["base64"]`); empty when it was there as it is.
    pub encoding: Vec<&'static str>,
    /// For a secret inside an archive: the member's path from the
    /// outermost archive on; `path` is then `ARCHIVE!MEMBER`.
    pub member: Option<String>,
}

impl Finding {
    /// The file the secret is in: for an archive member, the archive.
    pub fn file_path(&self) -> &str {
        match &self.member {
            Some(member) => self
                .path
                .strip_suffix(member.as_str())
                .and_then(|p| p.strip_suffix('!'))
                .unwrap_or(&self.path),
            None => &self.path,
        }
    }
}

/// The answer of a rule's liveness check for a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Liveness {
    /// The provider accepted the secret: it works.
    Live,
    /// The provider refused it: revoked or never valid.
    Invalid,
    /// No clear answer (network error, timeout, another status).
    Unknown,
}

impl Liveness {
    pub fn as_str(self) -> &'static str {
        match self {
            Liveness::Live => "live",
            Liveness::Invalid => "invalid",
            Liveness::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for Liveness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The fingerprint of a secret found by `rule_id` in `path`.
pub fn fingerprint(rule_id: &str, path: &str, secret: &Secret) -> String {
    format!("{rule_id}:{path}:{}", secret.sha256_hex())
}

/// Sorts findings by commit (oldest first), path, line, column and rule.
pub fn sort_findings(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        let order = |f: &Finding| f.commit.as_ref().map(|c| c.order);
        (order(a), &a.path, a.line, a.column, &a.rule_id).cmp(&(
            order(b),
            &b.path,
            b.line,
            b.column,
            &b.rule_id,
        ))
    });
}
