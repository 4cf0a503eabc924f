//! Human-readable report: findings grouped by file, styled for a terminal.

use super::ReportContext;
use crate::rules::Severity;
use crate::scan::Finding;
use anstyle::{AnsiColor, Style};
use std::io::{self, Write};

const PATH: Style = Style::new().bold().underline();
const PLACE: Style = AnsiColor::Cyan.on_default();
const SECRET: Style = AnsiColor::Yellow.on_default().bold();
const DIM: Style = Style::new().dimmed();
const LIVE: Style = AnsiColor::Red.on_default().bold();

fn severity_style(s: Severity) -> Style {
    match s {
        Severity::Critical | Severity::High => AnsiColor::Red.on_default().bold(),
        Severity::Medium => AnsiColor::Yellow.on_default(),
        Severity::Low | Severity::Info => AnsiColor::Blue.on_default(),
    }
}

pub(super) fn write(
    out: &mut dyn Write,
    findings: &[Finding],
    ctx: &ReportContext<'_>,
) -> io::Result<()> {
    let mut current: Option<&str> = None;
    for f in findings {
        if current != Some(f.path.as_str()) {
            if current.is_some() {
                writeln!(out)?;
            }
            writeln!(out, "{PATH}{}{PATH:#}", super::printable(&f.path))?;
            current = Some(&f.path);
        }
        let sev = severity_style(f.severity);
        write!(
            out,
            "  {PLACE}{}:{}{PLACE:#}  {sev}{}{sev:#}  {}  {SECRET}{}{SECRET:#}",
            f.line,
            f.column,
            f.severity,
            f.rule_id,
            ctx.secret_text(f)
        )?;
        if let Some(v) = f.verification {
            let style = match v {
                crate::scan::Liveness::Live => LIVE,
                _ => DIM,
            };
            write!(out, "  {style}[{v}]{style:#}")?;
        }
        if f.binary {
            write!(out, "  {DIM}(binary file){DIM:#}")?;
        }
        if !f.encoding.is_empty() {
            write!(
                out,
                "  {DIM}(decoded from {}){DIM:#}",
                f.encoding.join(" > ")
            )?;
        }
        writeln!(out)?;
        if let Some(c) = &f.commit {
            writeln!(
                out,
                "      {DIM}{}{DIM:#}",
                super::printable(&super::commit::one_line(c))
            )?;
        }
    }
    Ok(())
}
