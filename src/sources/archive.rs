//! Archives opened as their members: zip (and what is zip inside: `.jar`,
//! `.whl`, `.apk`, `.docx`, `.xlsx`, `.nupkg`), tar, gzip (a `.tar.gz` is
//! gzip around tar), nested to a depth. Recognised by their first bytes,
//! not their names. Each member is streamed through the [`Chunker`] into
//! the sink under an [`Origin::Member`] (`dist/pkg.tgz!package/.env`), so a
//! member of any size needs bounded memory; nothing is written to disk.
//!
//! Archives are hostile input: a member whose name leaves the archive
//! (absolute, `..`), an encrypted member, more entries than the limit, more
//! expanded bytes than the limit (per archive and in all), a member that
//! expands more than the ratio allows — each is skipped with a warning
//! naming the archive and the limit, and the scan goes on.

use super::{Chunker, Origin, Sink, SourceWarning, Unit};
use std::io::{self, Cursor, Read, Seek};
use std::path::{Component, Path};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Limits on what archives may expand to.
#[derive(Debug, Clone)]
pub struct ArchiveLimits {
    /// Archives inside archives, at most this deep (1: members of the
    /// archive only).
    pub max_depth: usize,
    /// Bytes one archive (with its nested archives) may expand to.
    pub max_bytes: u64,
    /// Bytes all archives of a scan may expand to.
    pub max_total_bytes: u64,
    /// Members one archive may hold.
    pub max_entries: u64,
    /// Expanded bytes per compressed byte a member may reach (checked once
    /// it is past 1 MiB).
    pub max_ratio: u64,
    /// The largest nested zip read into memory to be opened (zip needs to
    /// seek).
    pub max_nested_zip: u64,
}

impl Default for ArchiveLimits {
    fn default() -> Self {
        ArchiveLimits {
            max_depth: 3,
            max_bytes: 5 << 30,
            max_total_bytes: 64 << 30,
            max_entries: 100_000,
            max_ratio: 200,
            max_nested_zip: 64 << 20,
        }
    }
}

/// Opens archives for one scan, counting what they expand to.
#[derive(Debug)]
pub struct Expander {
    pub limits: ArchiveLimits,
    overlap: usize,
    total: AtomicU64,
}

/// What an input's first bytes say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Zip,
    Tar,
    Gzip,
}

/// The archive kind of an input starting with `head` (at least 262 bytes
/// when there are that many).
pub fn kind_of(head: &[u8]) -> Option<Kind> {
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        Some(Kind::Zip)
    } else if head.starts_with(&[0x1f, 0x8b]) {
        Some(Kind::Gzip)
    } else if head.get(257..262) == Some(b"ustar") {
        Some(Kind::Tar)
    } else {
        None
    }
}

/// Why an archive, or part of it, was not expanded.
fn skipped(archive: &Origin, what: String) -> SourceWarning {
    SourceWarning::Walk(format!(
        "{}: archive: {what}",
        crate::untrusted::one_line(&archive.display_path(), 300)
    ))
}

/// Why member `name` of `archive` was not scanned.
fn member_skipped(archive: &Origin, name: &str, why: &str) -> SourceWarning {
    skipped(
        archive,
        format!(
            "member {:?} {why}; not scanned",
            crate::untrusted::one_line(name, 200)
        ),
    )
}

/// Counts bytes read through it.
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Relaxed);
        Ok(n)
    }
}

/// One archive's budget, shared by its nested archives.
struct Budget {
    used: u64,
    entries: u64,
}

/// A member's reader that stops at the limits, saying which.
struct Bounded<'a, R> {
    inner: R,
    expander: &'a Expander,
    budget: &'a mut Budget,
    /// Compressed bytes consumed so far, for the ratio.
    compressed: Option<Arc<AtomicU64>>,
    /// Declared compressed size (zip).
    declared_compressed: Option<u64>,
    read: u64,
    stopped: Option<String>,
}

impl<R: Read> Read for Bounded<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.stopped.is_some() {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        self.budget.used += n as u64;
        let total = self.expander.total.fetch_add(n as u64, Relaxed) + n as u64;
        let limits = &self.expander.limits;
        let compressed = self
            .declared_compressed
            .or_else(|| self.compressed.as_ref().map(|c| c.load(Relaxed)));
        if self.budget.used > limits.max_bytes {
            self.stopped = Some(format!(
                "expands past --max-archive-bytes ({} bytes); the rest is not scanned",
                limits.max_bytes
            ));
        } else if total > limits.max_total_bytes {
            self.stopped = Some(format!(
                "archives of this scan expand past {} bytes in all; the rest is not scanned",
                limits.max_total_bytes
            ));
        } else if let Some(c) = compressed
            && self.read > 1 << 20
            && self.read / c.max(1) > limits.max_ratio
        {
            self.stopped = Some(format!(
                "a member expands more than {}:1 (a compression bomb?); the rest is not scanned",
                limits.max_ratio
            ));
        }
        Ok(n)
    }
}

/// Whether a member's name stays inside the archive.
fn name_is_safe(name: &str) -> bool {
    !name.is_empty()
        && !name.contains('\0')
        && Path::new(name)
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

impl Expander {
    pub fn new(limits: ArchiveLimits, overlap: usize) -> Expander {
        Expander {
            limits,
            overlap,
            total: AtomicU64::new(0),
        }
    }

    /// Counts one more member of an archive; false (with a warning) past
    /// the limit.
    fn one_more_entry<S: Sink>(&self, origin: &Origin, budget: &mut Budget, sink: &S) -> bool {
        budget.entries += 1;
        if budget.entries > self.limits.max_entries {
            sink.warning(skipped(
                origin,
                format!(
                    "more than {} members; the rest are not scanned",
                    self.limits.max_entries
                ),
            ));
            return false;
        }
        true
    }

    /// Expands the archive `origin` read from `input` (seekable: a file or
    /// bytes in memory), if it is one; false when it is not an archive (the
    /// caller scans it as it is).
    pub fn expand_seekable<R: Read + Seek, S: Sink>(
        &self,
        origin: &Origin,
        mut input: R,
        sink: &S,
        worker: &mut S::Worker,
    ) -> io::Result<bool> {
        let mut head = [0u8; 512];
        let n = read_up_to(&mut input, &mut head)?;
        input.rewind()?;
        let Some(kind) = kind_of(&head[..n]) else {
            return Ok(false);
        };
        let mut budget = Budget {
            used: 0,
            entries: 0,
        };
        match kind {
            Kind::Zip => self.zip(origin, input, sink, worker, 1, &mut budget),
            Kind::Tar => self.tar(origin, &mut input, sink, worker, 1, &mut budget),
            Kind::Gzip => self.gzip(origin, &mut input, sink, worker, 1, &mut budget),
        }
        Ok(true)
    }

    fn zip<R: Read + Seek, S: Sink>(
        &self,
        origin: &Origin,
        input: R,
        sink: &S,
        worker: &mut S::Worker,
        depth: usize,
        budget: &mut Budget,
    ) {
        let mut zip = match zip::ZipArchive::new(input) {
            Ok(z) => z,
            Err(e) => {
                sink.warning(skipped(origin, format!("not a readable zip: {e}")));
                return;
            }
        };
        for i in 0..zip.len() {
            if !self.one_more_entry(origin, budget, sink) {
                return;
            }
            let (name, encrypted, is_file, compressed) = match zip.by_index_raw(i) {
                Ok(f) => (
                    match f.name() {
                        Ok(n) => n.into_owned(),
                        Err(_) => String::from_utf8_lossy(f.name_raw()).into_owned(),
                    },
                    f.encrypted(),
                    f.is_file(),
                    f.compressed_size(),
                ),
                Err(e) => {
                    sink.warning(skipped(origin, format!("member {i} unreadable: {e}")));
                    continue;
                }
            };
            if !is_file {
                continue;
            }
            if !name_is_safe(&name) {
                sink.warning(member_skipped(
                    origin,
                    &name,
                    "names a path outside the archive",
                ));
                continue;
            }
            if encrypted {
                sink.warning(member_skipped(origin, &name, "is encrypted"));
                continue;
            }
            let mut member = match zip.by_index(i) {
                Ok(m) => m,
                Err(e) => {
                    sink.warning(member_skipped(
                        origin,
                        &name,
                        &format!("is unreadable: {e}"),
                    ));
                    continue;
                }
            };
            let member_origin = Origin::Member {
                archive: Arc::new(origin.clone()),
                path: name,
            };
            self.member(
                &member_origin,
                &mut member,
                Some(compressed),
                None,
                sink,
                worker,
                depth,
                budget,
            );
        }
    }

    fn tar<S: Sink>(
        &self,
        origin: &Origin,
        input: &mut dyn Read,
        sink: &S,
        worker: &mut S::Worker,
        depth: usize,
        budget: &mut Budget,
    ) {
        self.tar_counted(origin, input, None, sink, worker, depth, budget);
    }

    #[allow(clippy::too_many_arguments)]
    fn tar_counted<S: Sink>(
        &self,
        origin: &Origin,
        input: &mut dyn Read,
        compressed: Option<Arc<AtomicU64>>,
        sink: &S,
        worker: &mut S::Worker,
        depth: usize,
        budget: &mut Budget,
    ) {
        let mut tar = tar::Archive::new(input);
        let entries = match tar.entries() {
            Ok(e) => e,
            Err(e) => {
                sink.warning(skipped(origin, format!("not a readable tar: {e}")));
                return;
            }
        };
        for entry in entries {
            let mut entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    sink.warning(skipped(
                        origin,
                        format!("tar entry unreadable: {e}; the rest are not scanned"),
                    ));
                    return;
                }
            };
            if !self.one_more_entry(origin, budget, sink) {
                return;
            }
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            if !name_is_safe(&name) {
                sink.warning(member_skipped(
                    origin,
                    &name,
                    "names a path outside the archive",
                ));
                continue;
            }
            let member_origin = Origin::Member {
                archive: Arc::new(origin.clone()),
                path: name,
            };
            self.member(
                &member_origin,
                &mut entry,
                None,
                compressed.clone(),
                sink,
                worker,
                depth,
                budget,
            );
        }
    }

    fn gzip<S: Sink>(
        &self,
        origin: &Origin,
        input: &mut dyn Read,
        sink: &S,
        worker: &mut S::Worker,
        depth: usize,
        budget: &mut Budget,
    ) {
        let count = Arc::new(AtomicU64::new(0));
        let counted = Counting {
            inner: input,
            count: count.clone(),
        };
        let mut gz = flate2::read::MultiGzDecoder::new(counted);
        // Tar inside, or one member: the first bytes tell.
        let mut head = vec![0u8; 512];
        match read_up_to(&mut gz, &mut head) {
            Ok(n) => head.truncate(n),
            Err(e) => {
                sink.warning(skipped(origin, format!("not readable gzip: {e}")));
                return;
            }
        }
        let tar_inside = kind_of(&head) == Some(Kind::Tar);
        let mut gz = Cursor::new(head).chain(gz);
        if tar_inside {
            self.tar_counted(origin, &mut gz, Some(count), sink, worker, depth, budget);
            return;
        }
        let shown = origin.display_path();
        let name = Path::new(&shown)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = name
            .strip_suffix(".gz")
            .or_else(|| name.strip_suffix(".tgz"))
            .unwrap_or(&name)
            .to_string();
        let member_origin = Origin::Member {
            archive: Arc::new(origin.clone()),
            path: if name.is_empty() { "-".into() } else { name },
        };
        self.member(
            &member_origin,
            &mut gz,
            None,
            Some(count),
            sink,
            worker,
            depth,
            budget,
        );
    }

    /// Scans one member: an archive in turn (to the depth), or its bytes.
    #[allow(clippy::too_many_arguments)]
    fn member<S: Sink>(
        &self,
        origin: &Origin,
        reader: &mut dyn Read,
        declared_compressed: Option<u64>,
        compressed: Option<Arc<AtomicU64>>,
        sink: &S,
        worker: &mut S::Worker,
        depth: usize,
        budget: &mut Budget,
    ) {
        let mut head = vec![0u8; 512];
        match read_up_to(reader, &mut head) {
            Ok(n) => head.truncate(n),
            Err(e) => {
                sink.warning(skipped(origin, format!("unreadable: {e}")));
                return;
            }
        }
        let kind = kind_of(&head);
        let mut reader = Cursor::new(head).chain(reader);
        match kind {
            // An archive in an archive: its members are counted as they
            // are read, against this archive's budget.
            Some(kind) if depth < self.limits.max_depth => {
                match kind {
                    Kind::Zip => {
                        // Zip needs to seek: read it into memory, bounded.
                        let limit = self.limits.max_nested_zip;
                        let mut bytes = Vec::new();
                        if let Err(e) = (&mut reader).take(limit + 1).read_to_end(&mut bytes) {
                            sink.warning(skipped(origin, format!("unreadable: {e}")));
                            return;
                        }
                        if bytes.len() as u64 > limit {
                            sink.warning(skipped(
                                origin,
                                format!("a nested zip over {limit} bytes is not opened"),
                            ));
                            return;
                        }
                        self.zip(origin, Cursor::new(bytes), sink, worker, depth + 1, budget);
                    }
                    Kind::Tar => self.tar_counted(
                        origin,
                        &mut reader,
                        compressed,
                        sink,
                        worker,
                        depth + 1,
                        budget,
                    ),
                    Kind::Gzip => self.gzip(origin, &mut reader, sink, worker, depth + 1, budget),
                }
                return;
            }
            Some(_) => sink.warning(skipped(
                origin,
                format!(
                    "nested deeper than --max-archive-depth ({}); scanned as it is",
                    self.limits.max_depth
                ),
            )),
            None => {}
        }
        let mut bounded = Bounded {
            inner: reader,
            expander: self,
            budget,
            compressed,
            declared_compressed,
            read: 0,
            stopped: None,
        };
        let mut total = 0u64;
        let result = Chunker::new(self.overlap).stream(&mut bounded, |chunk, binary| {
            total = chunk.start.offset + chunk.data.len() as u64;
            sink.unit(
                worker,
                &Unit {
                    origin,
                    data: chunk.data,
                    keep: chunk.keep,
                    start: chunk.start,
                    binary,
                    decoded: None,
                },
            );
        });
        if let Err(e) = result {
            sink.warning(skipped(origin, format!("unreadable: {e}")));
        }
        if let Some(why) = bounded.stopped.take() {
            sink.warning(skipped(origin, why));
        }
        sink.input_done(worker, total);
    }
}

/// Reads until `buf` is full or the input ends; how many bytes.
fn read_up_to(r: &mut (impl Read + ?Sized), buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
