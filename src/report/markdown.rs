//! A Markdown table, for GitHub's job summary (`$GITHUB_STEP_SUMMARY`).

use super::ReportContext;
use crate::scan::Finding;
use std::io::{self, Write};

/// Escapes text for a table cell inside backticks.
fn cell(s: &str) -> String {
    s.replace('|', "\\|")
        .replace('`', "'")
        .replace(['\n', '\r'], " ")
}

pub(super) fn write(
    out: &mut dyn Write,
    findings: &[Finding],
    ctx: &ReportContext<'_>,
) -> io::Result<()> {
    if findings.is_empty() {
        return writeln!(out, "### keywarden: no secrets found\n");
    }
    let n = findings.len();
    writeln!(
        out,
        "### keywarden: {n} secret{} found\n",
        if n == 1 { "" } else { "s" }
    )?;
    let verified = findings.iter().any(|f| f.verification.is_some());
    if verified {
        writeln!(out, "| Rule | File | Line | Commit | Secret | Status |")?;
        writeln!(out, "|---|---|---|---|---|---|")?;
    } else {
        writeln!(out, "| Rule | File | Line | Commit | Secret |")?;
        writeln!(out, "|---|---|---|---|---|")?;
    }
    for f in findings {
        let commit = f
            .commit
            .as_ref()
            .map(|c| format!("`{}`", &c.id[..c.id.len().min(12)]))
            .unwrap_or_default();
        write!(
            out,
            "| {} | `{}` | {} | {} | `{}`{} |",
            cell(&f.rule_id),
            cell(&f.path),
            f.line,
            commit,
            cell(&ctx.secret_text(f)),
            super::encoding_note(f)
        )?;
        if verified {
            let status = f.verification.map_or("not verifiable", |v| v.as_str());
            write!(out, " {status} |")?;
        }
        writeln!(out)?;
    }
    writeln!(out)
}
