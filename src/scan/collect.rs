//! The sink that turns units into findings: match, place (line/column),
//! and drop what allowlists and inline `keywarden:allow` comments allow.

use super::finding::{Finding, fingerprint};
use super::{ScanStats, Suppressed};
use crate::matcher::{MatchCache, Matcher, RawMatch};
use crate::rules::Allowlist;
use crate::secret::Secret;
use crate::sources::{Sink, SourceWarning, Unit};
use std::sync::Mutex;
use std::sync::atomic::Ordering::Relaxed;

/// Markers that, anywhere on a secret's line, suppress it.
const INLINE_ALLOW: [&[u8]; 2] = [b"keywarden:allow", b"gitleaks:allow"];

pub(crate) struct Collector<'a> {
    pub matcher: &'a Matcher,
    pub allowlist: &'a Allowlist,
    pub stats: &'a ScanStats,
    pub on_warning: &'a (dyn Fn(SourceWarning) + Sync),
    pub findings: Mutex<Vec<Finding>>,
    pub suppressed: Mutex<Suppressed>,
}

pub(crate) struct Worker {
    cache: MatchCache,
    matches: Vec<RawMatch>,
}

impl Sink for Collector<'_> {
    type Worker = Worker;

    fn new_worker(&self) -> Worker {
        Worker {
            cache: self.matcher.new_cache(),
            matches: Vec::new(),
        }
    }

    fn unit(&self, worker: &mut Worker, unit: &Unit<'_>) {
        worker.matches.clear();
        self.matcher
            .find_all(&mut worker.cache, unit.data, &mut worker.matches);
        if worker.matches.is_empty() {
            return;
        }
        let path = unit.origin.display_path();
        let member = unit.origin.member_path();
        // A blob's commits and paths are joined to its findings later.
        let blob = match unit.origin.outermost() {
            crate::sources::Origin::Blob { blob, .. } => Some(*blob),
            _ => None,
        };
        let mut found = Vec::new();
        let mut suppressed = Suppressed::default();
        // Matches are ordered by position, so placing them is one pass.
        let mut cursor = (0usize, unit.start);
        for m in &worker.matches {
            if !unit.keep.contains(&m.span.start) {
                continue;
            }
            let rule = &self.matcher.rules()[m.rule];
            let secret = &unit.data[m.secret.clone()];
            if rule.allowlist.allows_path(&path)
                || self.allowlist.allows_path(&path)
                || rule.allowlist.allows_secret(secret)
                || self.allowlist.allows_secret(secret)
            {
                suppressed.allowlist += 1;
                continue;
            }
            let allowed_inline = match &unit.decoded {
                Some(d) => INLINE_ALLOW
                    .iter()
                    .any(|marker| memchr::memmem::find(d.context, marker).is_some()),
                None => has_inline_allow(unit.data, m.secret.clone()),
            };
            if allowed_inline {
                suppressed.inline += 1;
                continue;
            }
            let (start, end) = match &unit.decoded {
                // Decoded bytes have no place of their own: the encoded
                // span's.
                Some(d) => (d.at, d.end),
                None => {
                    let start = cursor.1.advance(&unit.data[cursor.0..m.secret.start]);
                    cursor = (m.secret.start, start);
                    let last_char = last_char_start(secret);
                    (start, start.advance(&secret[..last_char]))
                }
            };
            let secret = Secret::new(secret);
            found.push(Finding {
                rule_id: rule.id.clone(),
                description: rule.description.clone(),
                severity: rule.severity,
                fingerprint: fingerprint(&rule.id, &path, &secret),
                path: path.clone(),
                line: start.line,
                column: start.column,
                end_line: end.line,
                end_column: end.column,
                secret,
                binary: unit.binary,
                commit: None,
                blob,
                verification: None,
                encoding: unit.decoded.map(|d| d.chain.to_vec()).unwrap_or_default(),
                member: member.clone(),
            });
        }
        self.stats.findings.fetch_add(found.len() as u64, Relaxed);
        if !found.is_empty() {
            lock(&self.findings).append(&mut found);
        }
        if suppressed != Suppressed::default() {
            lock(&self.suppressed).add(suppressed);
        }
    }

    fn warning(&self, warning: SourceWarning) {
        self.stats.warnings.fetch_add(1, Relaxed);
        (self.on_warning)(warning);
    }

    fn input_done(&self, _worker: &mut Worker, bytes: u64) {
        self.stats.files.fetch_add(1, Relaxed);
        self.stats.bytes.fetch_add(bytes, Relaxed);
    }
}

/// Locks a mutex, recovering the data if another thread panicked.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Byte index where the last character of `s` starts.
fn last_char_start(s: &[u8]) -> usize {
    s.iter().rposition(|&b| (b & 0xC0) != 0x80).unwrap_or(0)
}

/// True when a line the secret touches carries an inline allow marker.
fn has_inline_allow(data: &[u8], secret: std::ops::Range<usize>) -> bool {
    let start = memchr::memrchr(b'\n', &data[..secret.start]).map_or(0, |i| i + 1);
    let end = memchr::memchr(b'\n', &data[secret.end..]).map_or(data.len(), |i| secret.end + i);
    let lines = &data[start..end];
    INLINE_ALLOW
        .iter()
        .any(|marker| memchr::memmem::find(lines, marker).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_allow_on_the_secrets_line_only() {
        let data = b"a = KEY # keywarden:allow\nb = KEY\nc = KEY // gitleaks:allow";
        assert!(has_inline_allow(data, 4..7));
        assert!(!has_inline_allow(data, 30..33));
        assert!(has_inline_allow(data, 38..41));
    }
}
