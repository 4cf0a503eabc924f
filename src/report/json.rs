//! JSON (one array) and JSONL (one object a line) reports. The same shape
//! is read back as a baseline.

use super::ReportContext;
use crate::scan::Finding;
use serde::Serialize;
use std::io::{self, Write};

#[derive(Serialize)]
struct JsonFinding<'a> {
    rule_id: &'a str,
    description: &'a str,
    severity: &'a str,
    path: &'a str,
    line: u64,
    column: u64,
    end_line: u64,
    end_column: u64,
    secret: String,
    fingerprint: &'a str,
    binary: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    commit: Option<JsonCommit<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    blob: Option<String>,
    /// `live`, `invalid` or `unknown` when `--verify` ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    verification: Option<&'static str>,
    /// How the secret was encoded, from the outside in; absent when plain.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    encoding: &'a [&'static str],
    /// For a secret inside an archive: the member (`path` is
    /// `ARCHIVE!MEMBER`).
    #[serde(skip_serializing_if = "Option::is_none")]
    member: Option<&'a str>,
}

#[derive(Serialize)]
struct JsonCommit<'a> {
    id: &'a str,
    author: &'a str,
    email: &'a str,
    date: String,
    message: &'a str,
}

fn view<'a>(f: &'a Finding, ctx: &ReportContext<'_>) -> JsonFinding<'a> {
    JsonFinding {
        rule_id: &f.rule_id,
        description: &f.description,
        severity: f.severity.as_str(),
        path: &f.path,
        line: f.line,
        column: f.column,
        end_line: f.end_line,
        end_column: f.end_column,
        secret: ctx.secret_text(f),
        fingerprint: &f.fingerprint,
        binary: f.binary,
        commit: f.commit.as_deref().map(|c| JsonCommit {
            id: &c.id,
            author: &c.author_name,
            email: &c.author_email,
            date: super::commit::author_date(c),
            message: &c.summary,
        }),
        blob: f.blob.map(|b| b.to_string()),
        verification: f.verification.map(|v| v.as_str()),
        encoding: &f.encoding,
        member: f.member.as_deref(),
    }
}

pub(super) fn write_array(
    out: &mut dyn Write,
    findings: &[Finding],
    ctx: &ReportContext<'_>,
) -> io::Result<()> {
    let views: Vec<_> = findings.iter().map(|f| view(f, ctx)).collect();
    serde_json::to_writer_pretty(&mut *out, &views)?;
    writeln!(out)
}

pub(super) fn write_lines(
    out: &mut dyn Write,
    findings: &[Finding],
    ctx: &ReportContext<'_>,
) -> io::Result<()> {
    for f in findings {
        serde_json::to_writer(&mut *out, &view(f, ctx))?;
        writeln!(out)?;
    }
    Ok(())
}
