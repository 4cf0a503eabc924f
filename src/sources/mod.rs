//! Sources: where bytes to scan come from — files in a directory tree,
//! stdin and git blobs — pushed as units of `(bytes, origin)` into a
//! [`Sink`]. Archive expansion and decoding sit between a source and the
//! sink, the same for all of them.
//!
//! Sources read and cut input; they never match and never decide what is a
//! finding. Problems with one input are [`SourceWarning`]s and the source
//! goes on.

pub mod archive;
mod chunk;
pub mod decode;
pub mod fs;
pub mod git;
pub mod stdin;

pub use chunk::{CHUNK_SIZE, Chunk, Chunker, Position, looks_binary};

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use thiserror::Error;

/// Where a unit of bytes came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A file found by walking the given roots.
    File(PathBuf),
    /// Standard input, under the name given for reports.
    Stdin(String),
    /// A git blob, under the path it is reported at while read; the
    /// commits and paths it is in are joined to its findings afterwards.
    Blob { path: String, blob: BlobId },
    /// A member of an archive (which may itself be a member).
    Member {
        archive: std::sync::Arc<Origin>,
        /// The member's path inside the archive, as the archive names it.
        path: String,
    },
}

impl Origin {
    /// The path shown in reports: as walked, without a leading `./`.
    pub fn display_path(&self) -> String {
        match self {
            Origin::File(p) => {
                let s = p.to_string_lossy();
                s.strip_prefix("./").unwrap_or(&s).to_string()
            }
            Origin::Stdin(name) => name.clone(),
            Origin::Blob { path, .. } => path.clone(),
            Origin::Member { archive, path } => format!("{}!{path}", archive.display_path()),
        }
    }

    /// The file, stream or blob the input is in (an archive member's
    /// outermost archive).
    pub fn outermost(&self) -> &Origin {
        match self {
            Origin::Member { archive, .. } => archive.outermost(),
            other => other,
        }
    }

    /// For an archive member: its path from the outermost archive on
    /// (`inner.tar!app/.env`).
    pub fn member_path(&self) -> Option<String> {
        match self {
            Origin::Member { archive, path } => Some(match archive.member_path() {
                Some(outer) => format!("{outer}!{path}"),
                None => path.clone(),
            }),
            _ => None,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display_path())
    }
}

/// A git blob's id (its SHA-1): what blobs are read and their findings
/// joined by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobId(pub [u8; 20]);

impl fmt::Display for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// A piece of one input, ready for matching.
pub struct Unit<'a> {
    pub origin: &'a Origin,
    /// Bytes the matcher sees, context included.
    pub data: &'a [u8],
    /// Matches starting in this range of `data` belong to this unit; the
    /// rest is context shared with neighbouring units.
    pub keep: Range<usize>,
    /// Position of `data[0]` in the input.
    pub start: Position,
    /// Whether the input looks binary (a NUL byte near its start).
    pub binary: bool,
    /// For bytes decoded from an encoded span: where the span is and how
    /// it was encoded. Every match in the unit is placed at the span.
    pub decoded: Option<decode::Decoded<'a>>,
}

/// Something a source could not read, and went on without.
#[derive(Debug, Error)]
pub enum SourceWarning {
    #[error("{path}: skipped: cannot read: {error}")]
    Unreadable { path: String, error: std::io::Error },
    #[error("{path}: skipped: broken symbolic link")]
    BrokenLink { path: String },
    #[error("{path}: skipped: {size} bytes is above --max-file-size ({limit} bytes)")]
    TooLarge { path: String, size: u64, limit: u64 },
    #[error("{path}: skipped: {kind}, not a regular file")]
    NotAFile { path: String, kind: &'static str },
    #[error("{path}: skipped: symbolic link loop")]
    LinkLoop { path: String },
    #[error("{0}")]
    Walk(String),
}

/// Receives units and warnings from a source, on the source's threads.
pub trait Sink: Sync {
    /// Per-thread state (e.g. matcher scratch space).
    type Worker: Send;
    /// Creates the state for one worker thread.
    fn new_worker(&self) -> Self::Worker;
    /// Handles one unit.
    fn unit(&self, worker: &mut Self::Worker, unit: &Unit<'_>);
    /// Handles a warning; the source goes on.
    fn warning(&self, warning: SourceWarning);
    /// Called once per input after its last unit, with its size in bytes.
    fn input_done(&self, _worker: &mut Self::Worker, _bytes: u64) {}
}
