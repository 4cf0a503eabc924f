//! GitHub Actions workflow commands: one `::error` annotation a finding.

use super::ReportContext;
use crate::scan::Finding;
use std::io::{self, Write};

/// Escapes a workflow-command message.
fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a workflow-command property value.
fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

pub(super) fn write(
    out: &mut dyn Write,
    findings: &[Finding],
    ctx: &ReportContext<'_>,
) -> io::Result<()> {
    for f in findings {
        writeln!(
            out,
            "::error file={},line={},endLine={},col={},endColumn={},title={}::{}",
            escape_property(&f.path),
            f.line,
            f.end_line,
            f.column,
            f.end_column + 1,
            escape_property(&format!("keywarden: {}", f.rule_id)),
            escape_data(&match &f.commit {
                Some(c) => format!(
                    "{} {} found{} ({})",
                    f.description,
                    ctx.secret_text(f),
                    super::verification_note(f),
                    super::commit::one_line(c)
                ),
                None => format!(
                    "{} {} found{}",
                    f.description,
                    ctx.secret_text(f),
                    super::verification_note(f)
                ),
            }),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_escape_separators_and_newlines() {
        assert_eq!(escape_property("a,b:c%\n"), "a%2Cb%3Ac%25%0A");
        assert_eq!(escape_data("50%: ok\r\n"), "50%25: ok%0D%0A");
    }
}
