//! Reports: findings turned into bytes for a writer, in text, JSON, JSONL,
//! SARIF 2.1.0 or GitHub workflow commands. Secrets are redacted unless the
//! caller asks for them whole.
//!
//! Reports never decide what is a finding and never choose where output
//! goes; the CLI hands them a writer.

mod commit;
mod github;
mod json;
mod markdown;
mod sarif;
mod text;

use crate::rules::Rule;
use crate::scan::Finding;
use std::io::{self, Write};
use std::str::FromStr;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Jsonl,
    Sarif,
    Github,
    Markdown,
}

impl Format {
    /// Names accepted on the command line.
    pub const NAMES: [&'static str; 6] = ["text", "json", "jsonl", "sarif", "github", "markdown"];
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "text" => Format::Text,
            "json" => Format::Json,
            "jsonl" => Format::Jsonl,
            "sarif" => Format::Sarif,
            "github" => Format::Github,
            "markdown" => Format::Markdown,
            _ => return Err(format!("unknown format '{s}'")),
        })
    }
}

/// What every format needs besides the findings.
pub struct ReportContext<'a> {
    /// The active rules (SARIF lists them all).
    pub rules: &'a [Rule],
    /// Print secrets whole instead of redacted.
    pub show_secrets: bool,
}

/// ` (verified live)` and the like, for one-line messages; empty when the
/// finding was not verified.
pub(crate) fn verification_note(f: &Finding) -> String {
    let verified = f
        .verification
        .map(|v| format!(" (verified {v})"))
        .unwrap_or_default();
    format!("{}{verified}", encoding_note(f))
}

/// ` (decoded from base64 > base64)` for a secret found encoded, or
/// nothing.
pub(crate) fn encoding_note(f: &Finding) -> String {
    if f.encoding.is_empty() {
        String::new()
    } else {
        format!(" (decoded from {})", f.encoding.join(" > "))
    }
}

impl ReportContext<'_> {
    /// The secret as this report shows it.
    pub(crate) fn secret_text(&self, f: &Finding) -> String {
        if self.show_secrets {
            String::from_utf8_lossy(f.secret.expose()).into_owned()
        } else {
            f.secret.redacted()
        }
    }
}

pub use crate::untrusted::printable;

/// Writes `findings` in `format`. Text output carries ANSI styles; pass an
/// `anstream` writer to strip them where colour is not wanted.
pub fn write_report(
    out: &mut dyn Write,
    format: Format,
    findings: &[Finding],
    ctx: &ReportContext<'_>,
) -> io::Result<()> {
    match format {
        Format::Text => text::write(out, findings, ctx),
        Format::Json => json::write_array(out, findings, ctx),
        Format::Jsonl => json::write_lines(out, findings, ctx),
        Format::Sarif => sarif::write(out, findings, ctx),
        Format::Github => github::write(out, findings, ctx),
        Format::Markdown => markdown::write(out, findings, ctx),
    }?;
    out.flush()
}
