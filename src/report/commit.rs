//! How reports show the commit a finding is attributed to.

use crate::provenance::CommitInfo;
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// The author date as RFC 3339 in the author's own offset.
pub fn author_date(c: &CommitInfo) -> String {
    let offset = UtcOffset::from_whole_seconds(c.offset_minutes * 60).unwrap_or(UtcOffset::UTC);
    OffsetDateTime::from_unix_timestamp(c.time)
        .map(|t| t.to_offset(offset))
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| c.time.to_string())
}

/// One line: `commit 1a2b3c4d by Name <email> on DATE: summary`.
pub fn one_line(c: &CommitInfo) -> String {
    format!(
        "commit {} by {} <{}> on {}: {}",
        &c.id[..c.id.len().min(12)],
        c.author_name,
        c.author_email,
        author_date(c),
        c.summary
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn author_date_keeps_the_authors_offset() {
        let c = CommitInfo {
            id: "0123456789abcdef".into(),
            author_name: "A".into(),
            author_email: "a@example.invalid".into(),
            time: 1_700_000_000,
            offset_minutes: 120,
            summary: "add config".into(),
            order: 0,
        };
        assert_eq!(author_date(&c), "2023-11-15T00:13:20+02:00");
        assert_eq!(
            one_line(&c),
            "commit 0123456789ab by A <a@example.invalid> on 2023-11-15T00:13:20+02:00: add config"
        );
    }
}
