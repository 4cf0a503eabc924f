//! Baselines: a JSON report written earlier whose findings are not
//! reported again (matched by fingerprint), and `.keywardenignore`, the
//! same fingerprints one per line, written by hand.
//!
//! A fingerprint is `rule:path:sha256(secret)`, the path relative to the
//! repository root (or the scan root outside git). Baselines written
//! before paths were made relative hold the path as it was typed
//! (`/abs/repo/src/a.py`, `repo/src/a.py`); such an entry still matches a
//! finding of the same rule and secret whose path ends it.

use super::Finding;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// The hand-written ignore file, looked for like `.keywarden.toml`.
pub const IGNORE_FILE_NAME: &str = ".keywardenignore";
use thiserror::Error;

/// A baseline file that could not be used.
#[derive(Debug, Error)]
pub enum BaselineError {
    #[error("{path}: cannot read baseline: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path}: not a keywarden JSON or JSONL report (line {line}: {reason}); write one with --write-baseline FILE"
    )]
    Parse {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error(
        "{path}: line {line} is not a fingerprint (rule:path:sha256 of the secret, as in a JSON report's \"fingerprint\"); comments start with #"
    )]
    IgnoreLine { path: PathBuf, line: usize },
}

#[derive(Deserialize)]
struct Entry {
    fingerprint: String,
}

/// Fingerprints of findings already known.
#[derive(Debug, Default, Clone)]
pub struct Baseline {
    fingerprints: HashSet<String>,
    /// Paths known for each (rule, secret hash), for entries written
    /// before paths were made relative.
    paths: HashMap<(String, String), Vec<String>>,
}

/// `rule:path:sha256` split in three; `None` when it is not that shape.
fn split_fingerprint(fingerprint: &str) -> Option<(&str, &str, &str)> {
    let (rule, rest) = fingerprint.split_once(':')?;
    let (path, hash) = rest.rsplit_once(':')?;
    let hex = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
    (!rule.is_empty() && !path.is_empty() && hex).then_some((rule, path, hash))
}

impl Baseline {
    /// Reads a JSON (array) or JSONL report.
    pub fn load(path: &Path) -> Result<Self, BaselineError> {
        let text = std::fs::read_to_string(path).map_err(|source| BaselineError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|(line, reason)| BaselineError::Parse {
            path: path.to_path_buf(),
            line,
            reason,
        })
    }

    fn parse(text: &str) -> Result<Self, (usize, String)> {
        let entries: Vec<Entry> = if text.trim_start().starts_with('[') {
            serde_json::from_str(text).map_err(|e| (e.line(), e.to_string()))?
        } else {
            text.lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
                .map(|(i, l)| serde_json::from_str(l).map_err(|e| (i + 1, e.to_string())))
                .collect::<Result<_, _>>()?
        };
        let mut baseline = Baseline::default();
        for e in entries {
            baseline.insert(e.fingerprint);
        }
        Ok(baseline)
    }

    /// Reads a `.keywardenignore`: one fingerprint a line; blank lines and
    /// lines starting with `#` are skipped; anything else fails, naming
    /// the line.
    pub fn load_ignore_file(path: &Path) -> Result<Self, BaselineError> {
        let text = std::fs::read_to_string(path).map_err(|source| BaselineError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse_ignore(&text).map_err(|line| BaselineError::IgnoreLine {
            path: path.to_path_buf(),
            line,
        })
    }

    /// Reads ignore-file text named `name` (e.g. `REV:.keywardenignore`).
    pub fn parse_ignore_named(name: &str, text: &str) -> Result<Self, BaselineError> {
        Self::parse_ignore(text).map_err(|line| BaselineError::IgnoreLine {
            path: PathBuf::from(name),
            line,
        })
    }

    fn parse_ignore(text: &str) -> Result<Self, usize> {
        let mut baseline = Baseline::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if split_fingerprint(line).is_none() {
                return Err(i + 1);
            }
            baseline.insert(line.to_string());
        }
        Ok(baseline)
    }

    fn insert(&mut self, fingerprint: String) {
        if let Some((rule, path, hash)) = split_fingerprint(&fingerprint) {
            self.paths
                .entry((rule.to_string(), hash.to_ascii_lowercase()))
                .or_default()
                .push(path.to_string());
        }
        self.fingerprints.insert(fingerprint);
    }

    /// Adds every fingerprint of `other`.
    pub fn extend(&mut self, other: Baseline) {
        for fingerprint in other.fingerprints {
            self.insert(fingerprint);
        }
    }

    /// Whether `finding` is known: its fingerprint, or an older entry of
    /// the same rule and secret whose path, as typed then, ends with the
    /// finding's path.
    pub fn knows(&self, finding: &Finding) -> bool {
        if self.fingerprints.contains(&finding.fingerprint) {
            return true;
        }
        let Some((rule, path, hash)) = split_fingerprint(&finding.fingerprint) else {
            return false;
        };
        self.paths
            .get(&(rule.to_string(), hash.to_string()))
            .is_some_and(|known| {
                known.iter().any(|k| {
                    k == path
                        || k.strip_suffix(path).is_some_and(|head| head.ends_with('/'))
                        || k.strip_prefix("./") == Some(path)
                })
            })
    }

    /// Removes findings the baseline knows; returns how many were removed.
    pub fn suppress(&self, findings: &mut Vec<Finding>) -> usize {
        let before = findings.len();
        findings.retain(|f| !self.knows(f));
        before - findings.len()
    }

    /// Number of fingerprints in the baseline.
    pub fn len(&self) -> usize {
        self.fingerprints.len()
    }

    /// True when the baseline holds no fingerprints.
    pub fn is_empty(&self) -> bool {
        self.fingerprints.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_array_and_jsonl_baselines_both_parse() {
        let a = Baseline::parse(r#"[{"fingerprint":"r:a:1","line":3},{"fingerprint":"r:b:2"}]"#)
            .unwrap();
        assert_eq!(a.len(), 2);
        let b = Baseline::parse("{\"fingerprint\":\"r:a:1\"}\n\n{\"fingerprint\":\"r:b:2\"}\n")
            .unwrap();
        assert_eq!(b.len(), 2);
    }

    fn finding(path: &str, hash: &str) -> Finding {
        let secret = crate::secret::Secret::new("x");
        Finding {
            rule_id: "r".into(),
            description: String::new(),
            severity: crate::rules::Severity::High,
            fingerprint: format!("r:{path}:{hash}"),
            path: path.into(),
            line: 1,
            column: 1,
            end_line: 1,
            end_column: 1,
            secret,
            binary: false,
            commit: None,
            blob: None,
            verification: None,
            encoding: Vec::new(),
            member: None,
        }
    }

    #[test]
    fn entries_with_the_path_as_once_typed_still_match() {
        let h = "ab".repeat(32);
        let text = format!(
            "[{{\"fingerprint\":\"r:/home/ci/repo/src/a.py:{h}\"}},{{\"fingerprint\":\"r:repo/b.py:{h}\"}}]"
        );
        let b = Baseline::parse(&text).unwrap();
        assert!(b.knows(&finding("src/a.py", &h)));
        assert!(b.knows(&finding("b.py", &h)));
        // Whole path components only, and the same secret.
        assert!(!b.knows(&finding("rc/a.py", &h)));
        assert!(!b.knows(&finding("c/b.py", &h)));
        assert!(!b.knows(&finding("src/a.py", &"cd".repeat(32))));
    }

    #[test]
    fn ignore_files_take_fingerprints_and_comments_and_name_a_bad_line() {
        let h = "ab".repeat(32);
        let b = Baseline::parse_ignore(&format!("# test keys\n\nr:src/a.py:{h}\n  r:b.py:{h}  \n"))
            .unwrap();
        assert_eq!(b.len(), 2);
        assert!(b.knows(&finding("src/a.py", &h)));
        assert_eq!(
            Baseline::parse_ignore(&format!("r:a:{h}\nsrc/a.py\n")).err(),
            Some(2)
        );
        assert_eq!(Baseline::parse_ignore("r:a:123\n").err(), Some(1));
    }

    #[test]
    fn malformed_baseline_names_the_line() {
        let (line, _) = Baseline::parse("{\"fingerprint\":\"x\"}\n{nope}\n").unwrap_err();
        assert_eq!(line, 2);
        assert!(Baseline::parse("[{\"line\": 1}]").is_err());
    }
}
