//! Errors from reading and checking rule files, each naming file and line.

use std::ops::Range;
use std::path::PathBuf;
use thiserror::Error;

/// A rule file that could not be used, with where and why.
#[derive(Debug, Error)]
pub enum RuleError {
    /// The file could not be read at all.
    #[error("{path}: cannot read {what}: {source}")]
    Read {
        path: PathBuf,
        /// "rule file" or "configuration file".
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The file was read but something in it is wrong.
    #[error("{file}:{line}:{column}: {reason}")]
    Invalid {
        file: String,
        line: usize,
        column: usize,
        reason: String,
    },
}

impl RuleError {
    /// Builds an [`RuleError::Invalid`] for the byte span `span` of `src`.
    pub(crate) fn at(file: &str, src: &str, span: Range<usize>, reason: impl Into<String>) -> Self {
        let (line, column) = line_col(src, span.start);
        RuleError::Invalid {
            file: file.to_string(),
            line,
            column,
            reason: reason.into(),
        }
    }
}

/// 1-based line and column (in characters) of byte `offset` in `src`.
fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = &src.as_bytes()[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("ab\n", 99), (2, 1));
    }
}
