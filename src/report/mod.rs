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
    f.verification
        .map(|v| format!(" (verified {v})"))
        .unwrap_or_default()
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

/// `s` with control characters (newlines, escape sequences) and bidi
/// overrides written as Rust escapes (`\n`, `\u{1b}`, `\u{202e}`), for
/// output read on a terminal: a file name or commit message cannot break a
/// line, restyle the screen or reorder what is shown.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    let hostile =
        |c: char| c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if !s.chars().any(hostile) {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !hostile(c) {
            out.push(c);
        } else if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.extend(c.escape_unicode());
        }
    }
    out.into()
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_control_characters_only() {
        assert_eq!(printable("a/b c.txt"), "a/b c.txt");
        assert_eq!(
            printable("new\nline\t\u{1b}[31m.txt"),
            "new\\nline\\t\\u{1b}[31m.txt"
        );
        assert_eq!(printable("ключ\u{fffd}.txt"), "ключ\u{fffd}.txt");
        assert_eq!(printable("a\u{202e}txt.exe"), "a\\u{202e}txt.exe");
    }
}
