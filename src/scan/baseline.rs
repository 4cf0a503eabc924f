//! Baselines: a JSON report written earlier whose findings are not
//! reported again (matched by fingerprint).

use super::Finding;
use serde::Deserialize;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
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
}

#[derive(Deserialize)]
struct Entry {
    fingerprint: String,
}

/// Fingerprints of findings already known.
#[derive(Debug, Default, Clone)]
pub struct Baseline {
    fingerprints: HashSet<String>,
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
        Ok(Baseline {
            fingerprints: entries.into_iter().map(|e| e.fingerprint).collect(),
        })
    }

    /// Removes findings the baseline knows; returns how many were removed.
    pub fn suppress(&self, findings: &mut Vec<Finding>) -> usize {
        let before = findings.len();
        findings.retain(|f| !self.fingerprints.contains(&f.fingerprint));
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

    #[test]
    fn malformed_baseline_names_the_line() {
        let (line, _) = Baseline::parse("{\"fingerprint\":\"x\"}\n{nope}\n").unwrap_err();
        assert_eq!(line, 2);
        assert!(Baseline::parse("[{\"line\": 1}]").is_err());
    }
}
