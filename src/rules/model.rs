//! Checked, compiled rules and allowlists: what the matcher and scan use.

use globset::GlobSet;
use regex_automata::meta::Regex;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How serious a finding of a rule is. Ordered from most to least severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
    Info,
}

impl Severity {
    /// All severities, most severe first.
    pub const ALL: [Severity; 5] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Info,
    ];

    /// The lowercase name used in rule files and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
            Severity::Info => "info",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Severity::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!("unknown severity '{s}' (expected critical, high, medium, low or info)")
            })
    }
}

/// Where a rule came from, for `rules list` and error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleOrigin {
    /// Embedded from `rules/<file>` at build time.
    Builtin(String),
    /// Loaded from a file given at run time.
    File(String),
}

impl fmt::Display for RuleOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleOrigin::Builtin(name) => write!(f, "builtin:{name}"),
            RuleOrigin::File(path) => f.write_str(path),
        }
    }
}

/// Things not to report: paths (globs), secrets matching a regex, and
/// secrets containing a stopword (case-insensitive).
#[derive(Debug, Clone, Default)]
pub struct Allowlist {
    pub(crate) paths: Option<GlobSet>,
    pub(crate) regexes: Vec<regex::bytes::Regex>,
    pub(crate) stopwords: Vec<Vec<u8>>,
}

impl Allowlist {
    /// True when a finding in `path` is allowed by a path glob.
    pub fn allows_path(&self, path: &str) -> bool {
        self.paths.as_ref().is_some_and(|g| g.is_match(path))
    }

    /// True when `secret` matches an allow regex or contains a stopword.
    pub fn allows_secret(&self, secret: &[u8]) -> bool {
        self.regexes.iter().any(|r| r.is_match(secret))
            || self.stopwords.iter().any(|w| {
                secret
                    .windows(w.len())
                    .any(|win| win.eq_ignore_ascii_case(w))
            })
    }

    /// True when the allowlist has no entries at all.
    pub fn is_empty(&self) -> bool {
        self.paths.is_none() && self.regexes.is_empty() && self.stopwords.is_empty()
    }
}

/// A validated rule with its regex compiled.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub description: String,
    pub severity: Severity,
    /// Literals for the prefilter; every match of `regex` contains one.
    pub keywords: Vec<String>,
    /// The regex as written, for listing.
    pub pattern: String,
    pub(crate) regex: Regex,
    /// Capture group that names the secret (0: the whole match).
    pub(crate) secret_group: usize,
    /// Upper bound on a match's length in bytes, when the regex has one.
    pub(crate) max_len: Option<usize>,
    /// Minimum Shannon entropy (bits per byte) of the secret.
    pub entropy: Option<f64>,
    pub allowlist: Allowlist,
    pub examples: Vec<String>,
    pub negative_examples: Vec<String>,
    /// How `--verify` checks a secret of this rule, if it can.
    pub verify: Option<Verifier>,
    pub origin: RuleOrigin,
}

/// A liveness check for a rule's secrets: `GET {base}{path}` with the
/// secret in a header. The secret never goes into the URL, and only to the
/// base's host.
#[derive(Debug, Clone, PartialEq)]
pub struct Verifier {
    /// The default base URL, e.g. `https://openrouter.ai`.
    pub base: String,
    /// The path after the base, e.g. `/api/v1/key`.
    pub path: String,
    /// Header names and value templates holding `{secret}`.
    pub headers: Vec<(String, String)>,
    pub live: Vec<u16>,
    pub invalid: Vec<u16>,
}

impl Rule {
    /// The compiled confirmation regex (bytes, leftmost-first).
    pub fn regex(&self) -> &Regex {
        &self.regex
    }

    /// Capture group index holding the secret; 0 means the whole match.
    pub fn secret_group(&self) -> usize {
        self.secret_group
    }

    /// Upper bound on a match's length, if the regex is bounded.
    pub fn max_len(&self) -> Option<usize> {
        self.max_len
    }
}
