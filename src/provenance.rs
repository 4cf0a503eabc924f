//! Where in git history a finding is: the commit it is attributed to.
//! Sources fill it in from their enumeration and reports show it; it is
//! plain data, joined to a blob's findings after matching, so that neither
//! the matcher nor the reports know git.

/// The commit a finding is attributed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    pub id: String,
    pub author_name: String,
    pub author_email: String,
    /// Author time, seconds since the epoch, and its UTC offset in minutes.
    pub time: i64,
    pub offset_minutes: i32,
    /// First line of the message.
    pub summary: String,
    /// Position in the oldest-first walk: lower is earlier.
    pub order: u32,
}
