//! The TOML shape of rule files and `.keywarden.toml`, as written by people.
//!
//! Only deserialisation lives here; [`super::compile`] turns a spec into a
//! checked [`super::Rule`]. Spans are kept so every error can name a line.

use serde::Deserialize;
use toml::Spanned;

/// One rule file or configuration file. Built-in files use only `rules`;
/// `.keywarden.toml` may also disable rules and add global allowlists.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DocumentSpec {
    #[serde(default)]
    pub rules: Vec<Spanned<RuleSpec>>,
    #[serde(default)]
    pub disabled_rules: Vec<Spanned<String>>,
    #[serde(default)]
    pub allowlist: Option<Spanned<AllowlistSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuleSpec {
    pub id: Spanned<String>,
    pub description: String,
    #[serde(default)]
    pub keywords: Option<Spanned<Vec<String>>>,
    pub regex: Spanned<String>,
    #[serde(default)]
    pub entropy: Option<Spanned<f64>>,
    #[serde(default)]
    pub allowlist: Option<Spanned<AllowlistSpec>>,
    #[serde(default)]
    pub severity: Option<Spanned<String>>,
    #[serde(default)]
    pub examples: Vec<String>,
    #[serde(default)]
    pub negative_examples: Vec<String>,
    #[serde(default)]
    pub verify: Option<Spanned<VerifySpec>>,
}

/// How to ask a provider whether a found secret works (`--verify`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VerifySpec {
    /// `{base}/path`: where the check goes; never holds `{secret}`.
    pub url: Spanned<String>,
    /// Default base URL (`--verify-url` replaces it).
    pub base: Spanned<String>,
    /// `Name: value` headers; `{secret}` is replaced by the secret.
    pub headers: Vec<Spanned<String>>,
    /// Statuses meaning the secret works.
    pub live: Vec<u16>,
    /// Statuses meaning it does not (revoked or invalid).
    pub invalid: Vec<u16>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AllowlistSpec {
    #[serde(default)]
    pub paths: Vec<Spanned<String>>,
    #[serde(default)]
    pub regexes: Vec<Spanned<String>>,
    #[serde(default)]
    pub stopwords: Vec<String>,
}
