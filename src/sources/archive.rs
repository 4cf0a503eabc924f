//! Archives opened as their members: zip (and what is zip inside: `.jar`,
//! `.whl`, `.apk`, `.docx`, `.xlsx`, `.nupkg`), tar, and the compressed
//! streams gzip, bzip2, xz and zstd (a `.tar.gz` is gzip around tar, a
//! `.log.zst` one member), nested to a depth. Recognised by their first bytes,
//! not their names. Each member is streamed through the [`Chunker`] into
//! the sink under an [`Origin::Member`] (`dist/pkg.tgz!package/.env`), so a
//! member of any size needs bounded memory; nothing is written to disk.
//!
//! Archives are hostile input: a member whose name leaves the archive
//! (absolute, `..`), an encrypted member, more entries than the limit, more
//! expanded bytes than the limit (per archive and in all), a member that
//! expands more than the ratio allows, an xz or zstd stream that asks for
//! more memory than [`MAX_DECODER_MEMORY`] — each is skipped with a warning
//! naming the archive and the limit, and the scan goes on.

use super::{Chunker, Origin, Sink, SourceWarning, Unit};
use std::io::{self, Cursor, Read, Seek};
use std::path::{Component, Path};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The most memory an xz dictionary or a zstd window may ask for: what
/// `zstd -d` allows without `--memory`, and twice `xz -9`'s dictionary.
pub const MAX_DECODER_MEMORY: u64 = 128 << 20;

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
    /// Bytes an archive's members may expand to per byte read of the
    /// archive (checked once they are past 1 MiB).
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
    /// A compressed stream: tar inside, or one member.
    Compressed(Codec),
}

/// The compressed streams opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

impl Codec {
    fn name(self) -> &'static str {
        match self {
            Codec::Gzip => "gzip",
            Codec::Bzip2 => "bzip2",
            Codec::Xz => "xz",
            Codec::Zstd => "zstd",
        }
    }

    /// What its files' names end with, and what that becomes for the one
    /// member (`app.log.gz` holds `app.log`, `x.tgz` holds `x.tar`), as
    /// gunzip, bunzip2, unxz and unzstd name what they write.
    fn suffixes(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Codec::Gzip => &[(".gz", ""), (".tgz", ".tar")],
            Codec::Bzip2 => &[(".bz2", ""), (".tbz2", ".tar"), (".tbz", ".tar")],
            Codec::Xz => &[(".xz", ""), (".txz", ".tar")],
            Codec::Zstd => &[(".zst", ""), (".tzst", ".tar")],
        }
    }
}

/// The archive kind of an input starting with `head` (at least 262 bytes
/// when there are that many).
pub fn kind_of(head: &[u8]) -> Option<Kind> {
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        Some(Kind::Zip)
    } else if head.starts_with(&[0x1f, 0x8b]) {
        Some(Kind::Compressed(Codec::Gzip))
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Some(Kind::Compressed(Codec::Xz))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || (head.first().is_some_and(|b| b & 0xf0 == 0x50)
            && head.get(1..4) == Some(&[0x2a, 0x4d, 0x18]))
    {
        // A frame, or a skippable frame first (pzstd writes one).
        Some(Kind::Compressed(Codec::Zstd))
    } else if is_bzip2(head) {
        Some(Kind::Compressed(Codec::Bzip2))
    } else if head.get(257..262) == Some(b"ustar") {
        Some(Kind::Tar)
    } else {
        None
    }
}

/// `BZh`, a block size digit, then a block's or the end's magic: text that
/// happens to start with `BZh9` is not taken for bzip2.
fn is_bzip2(head: &[u8]) -> bool {
    const BLOCK: [u8; 6] = [0x31, 0x41, 0x59, 0x26, 0x53, 0x59];
    const END: [u8; 6] = [0x17, 0x72, 0x45, 0x38, 0x50, 0x90];
    head.starts_with(b"BZh")
        && head.get(3).is_some_and(|d| (b'1'..=b'9').contains(d))
        && head
            .get(4..10)
            .is_some_and(|m| m == BLOCK.as_slice() || m == END.as_slice())
}

/// Why an archive, or part of it, was not expanded. `what` may carry a
/// decoder's or parser's error text about hostile bytes: kept to one
/// printable line too.
fn skipped(archive: &Origin, what: String) -> SourceWarning {
    SourceWarning::Walk(format!(
        "{}: archive: {}",
        crate::untrusted::one_line(&archive.display_path(), 300),
        crate::untrusted::one_line(&what, 500)
    ))
}

/// Whether an archive could be opened at all; `Err` says why not (nothing
/// of it was scanned).
type Opened = Result<(), String>;

/// Why member `name` of `archive` was not scanned.
fn member_skipped(archive: &Origin, name: &str, why: &str) -> SourceWarning {
    skipped(
        archive,
        format!(
            "member \"{}\" {why}; not scanned",
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

impl<R: Seek> Seek for Counting<R> {
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

/// One archive's budget, shared by its nested archives.
struct Budget {
    /// Bytes its members (at every depth) expanded to.
    used: u64,
    entries: u64,
    /// Bytes read of the archive itself (its file or blob): the ratio is
    /// what all its members together expand to against these, so that no
    /// nesting, no member's declared size and no number of members each
    /// under a limit gets more than the ratio allows out of the bytes
    /// that came in.
    consumed: Arc<AtomicU64>,
    /// Compressed streams around the member being read.
    nesting: u32,
    /// A limit of the whole archive was reached (and told once): no more
    /// of it is read.
    spent: bool,
}

impl Budget {
    fn new(consumed: Arc<AtomicU64>) -> Self {
        Budget {
            used: 0,
            entries: 0,
            consumed,
            nesting: 0,
            spent: false,
        }
    }

    /// The memory an xz dictionary or zstd window may take at this depth:
    /// a nested stream gets half of what the stream around it may, so that
    /// streams inside streams take at most twice the limit together.
    fn decoder_memory(&self) -> u64 {
        (MAX_DECODER_MEMORY >> self.nesting.min(16)).max(1 << 20)
    }
}

/// A member's reader that stops at the limits, saying which.
struct Bounded<'a, R> {
    inner: R,
    expander: &'a Expander,
    budget: &'a mut Budget,
    stopped: Option<String>,
}

impl<'a, R: Read> Bounded<'a, R> {
    fn new(inner: R, expander: &'a Expander, budget: &'a mut Budget) -> Self {
        Bounded {
            inner,
            expander,
            budget,
            stopped: None,
        }
    }
}

impl<R: Read> Read for Bounded<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.stopped.is_some() {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        self.budget.used += n as u64;
        let total = self.expander.total.fetch_add(n as u64, Relaxed) + n as u64;
        let limits = &self.expander.limits;
        let used = self.budget.used;
        // Never early: what was read of the archive includes what its
        // decoders read ahead.
        let consumed = self.budget.consumed.load(Relaxed).max(1);
        if used > limits.max_bytes {
            self.stopped = Some(format!(
                "expands past --max-archive-bytes ({} bytes); the rest is not scanned",
                limits.max_bytes
            ));
        } else if total > limits.max_total_bytes {
            self.stopped = Some(format!(
                "archives of this scan expand past {} bytes in all; the rest is not scanned",
                limits.max_total_bytes
            ));
        } else if used > 1 << 20 && used / consumed > limits.max_ratio {
            self.stopped = Some(format!(
                "the archive expands more than {}:1 (--max-archive-ratio; a compression bomb?); the rest is not scanned",
                limits.max_ratio
            ));
        }
        self.budget.spent |= self.stopped.is_some();
        Ok(n)
    }
}

/// Reads at most 16 KiB at a time from a decoder that loses a read's
/// output when the read fails.
struct SmallReads<R>(R);

impl<R: Read> Read for SmallReads<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(16 << 10);
        self.0.read(&mut buf[..n])
    }
}

/// Gives an error once, then ends: a stream that failed after some bytes
/// decoded, so that those are scanned before the error is told.
struct Failed(Option<io::Error>);

impl Read for Failed {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        self.0.take().map_or(Ok(0), Err)
    }
}

/// Keeps the first bytes read through it (up to a limit), so that an
/// archive inside an archive that does not open can be scanned as it is.
struct Recorder<'a> {
    inner: &'a mut dyn Read,
    seen: Vec<u8>,
    overflowed: bool,
}

/// How much of a nested archive is kept to be scanned again if it does
/// not open (it fails within its first bytes when it is not one; a zstd
/// decoder reads 128 KiB at once).
const REPLAY: usize = 1 << 20;

impl Read for Recorder<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if !self.overflowed {
            if self.seen.len() + n <= REPLAY {
                self.seen.extend_from_slice(&buf[..n]);
            } else {
                self.overflowed = true;
                self.seen = Vec::new();
            }
        }
        Ok(n)
    }
}

/// The name of a compressed stream's one member: the stream's own name
/// (the last part of its path, or of its member path) without the codec's
/// suffix.
fn single_member_name(origin: &Origin, codec: Codec) -> String {
    let own = match origin {
        Origin::Member { path, .. } => path.clone(),
        other => other.display_path(),
    };
    let name = Path::new(&own)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Suffixes are ASCII: a cut at a suffix's length from the end that
    // lands inside a character is no match.
    let stem = codec.suffixes().iter().find_map(|(suffix, becomes)| {
        let cut = name.len().checked_sub(suffix.len())?;
        let (stem, end) = (name.get(..cut)?, name.get(cut..)?);
        end.eq_ignore_ascii_case(suffix)
            .then(|| format!("{stem}{becomes}"))
    });
    match stem {
        Some(stem) if !stem.is_empty() => stem,
        Some(_) => "-".into(),
        None => name,
    }
}

/// The origin of member `path` of `archive`.
fn member_of(archive: &Origin, path: String) -> Origin {
    Origin::Member {
        archive: Arc::new(archive.clone()),
        path,
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
    /// bytes in memory), if it is one; false when it is not an archive or
    /// could not be opened as one (a warning says why): the caller scans
    /// it as it is, so a key in a file that only starts like an archive is
    /// not lost.
    pub fn expand_seekable<R: Read + Seek, S: Sink>(
        &self,
        origin: &Origin,
        mut input: R,
        sink: &S,
        worker: &mut S::Worker,
    ) -> io::Result<bool> {
        let kind = peek(&mut input)?.0;
        input.rewind()?;
        let Some(kind) = kind else {
            return Ok(false);
        };
        let consumed = Arc::new(AtomicU64::new(0));
        let mut budget = Budget::new(consumed.clone());
        let mut input = Counting {
            inner: input,
            count: consumed,
        };
        let opened = match kind {
            Kind::Zip => self.zip(origin, &mut input, sink, worker, 1, &mut budget),
            Kind::Tar => self.tar(origin, &mut input, sink, worker, 1, &mut budget),
            Kind::Compressed(codec) => {
                self.compressed(codec, origin, &mut input, sink, worker, 1, &mut budget)
            }
        };
        if let Err(why) = opened {
            sink.warning(skipped(origin, format!("{why}; scanned as it is")));
            return Ok(false);
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
    ) -> Opened {
        let mut zip = match zip::ZipArchive::new(input) {
            Ok(z) => z,
            Err(e) => return Err(format!("not a readable zip: {e}")),
        };
        for i in 0..zip.len() {
            if budget.spent || !self.one_more_entry(origin, budget, sink) {
                return Ok(());
            }
            let (name, encrypted, is_file) = match zip.by_index_raw(i) {
                Ok(f) => (
                    match f.name() {
                        Ok(n) => n.into_owned(),
                        Err(_) => String::from_utf8_lossy(f.name_raw()).into_owned(),
                    },
                    f.encrypted(),
                    f.is_file(),
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
            let member_origin = member_of(origin, name);
            self.member(&member_origin, &mut member, sink, worker, depth, budget);
        }
        Ok(())
    }

    fn tar<S: Sink>(
        &self,
        origin: &Origin,
        input: &mut dyn Read,
        sink: &S,
        worker: &mut S::Worker,
        depth: usize,
        budget: &mut Budget,
    ) -> Opened {
        let mut tar = tar::Archive::new(input);
        let entries = match tar.entries() {
            Ok(e) => e,
            Err(e) => return Err(format!("not a readable tar: {e}")),
        };
        for (i, entry) in entries.enumerate() {
            let mut entry = match entry {
                Ok(e) => e,
                Err(e) if i == 0 => return Err(format!("not a readable tar: {e}")),
                Err(e) => {
                    sink.warning(skipped(
                        origin,
                        format!("tar entry unreadable: {e}; the rest are not scanned"),
                    ));
                    return Ok(());
                }
            };
            if budget.spent || !self.one_more_entry(origin, budget, sink) {
                return Ok(());
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
            let member_origin = member_of(origin, name);
            self.member(&member_origin, &mut entry, sink, worker, depth, budget);
        }
        Ok(())
    }

    /// A compressed stream: the tar inside it, or its one member, named
    /// after the stream without the codec's suffix.
    #[allow(clippy::too_many_arguments)]
    fn compressed<S: Sink>(
        &self,
        codec: Codec,
        origin: &Origin,
        input: &mut dyn Read,
        sink: &S,
        worker: &mut S::Worker,
        depth: usize,
        budget: &mut Budget,
    ) -> Opened {
        let memory = budget.decoder_memory();
        let decoder: io::Result<Box<dyn Read + '_>> = match codec {
            Codec::Gzip => Ok(Box::new(flate2::read::MultiGzDecoder::new(input))),
            Codec::Bzip2 => Ok(Box::new(bzip2::read::MultiBzDecoder::new(input))),
            // lzma-rust2 counts a dictionary and about 100 KiB besides. It
            // drops what a read decoded when the read fails, so reads are
            // kept small: a stream cut short loses little before the cut.
            Codec::Xz => Ok(Box::new(SmallReads(lzma_rust2::XzReader::new_mem_limit(
                io::BufReader::new(input),
                true,
                u32::try_from((memory >> 10) + 1024).unwrap_or(u32::MAX),
            )))),
            // Frames one after another, skippable ones skipped.
            Codec::Zstd => zstd::stream::read::Decoder::new(input).and_then(|mut d| {
                d.window_log_max(memory.ilog2())?;
                Ok(Box::new(d) as Box<dyn Read + '_>)
            }),
        };
        let decoded = match decoder {
            Ok(d) => d,
            Err(e) => return Err(not_decoded(codec, &e, memory)),
        };
        // Tar inside, or one member: the first bytes tell. A stream that
        // fails before any of them is not one.
        let (inside, mut decoded) = peek(decoded).map_err(|e| not_decoded(codec, &e, memory))?;
        let tar_inside = inside == Some(Kind::Tar);
        budget.nesting += 1;
        let opened = if tar_inside {
            self.tar(origin, &mut decoded, sink, worker, depth, budget)
        } else {
            let member_origin = member_of(origin, single_member_name(origin, codec));
            self.member(&member_origin, &mut decoded, sink, worker, depth, budget);
            Ok(())
        };
        budget.nesting -= 1;
        opened
    }

    /// Scans one member: an archive in turn (to the depth), or its bytes.
    #[allow(clippy::too_many_arguments)]
    fn member<S: Sink>(
        &self,
        origin: &Origin,
        reader: &mut dyn Read,
        sink: &S,
        worker: &mut S::Worker,
        depth: usize,
        budget: &mut Budget,
    ) {
        let (kind, mut reader) = match peek(reader) {
            Ok(peeked) => peeked,
            Err(e) => {
                sink.warning(skipped(origin, format!("unreadable: {e}")));
                return;
            }
        };
        match kind {
            // A zip in an archive: zip needs to seek, so it is read into
            // memory, bounded; its members are counted against this
            // archive's budget.
            Some(Kind::Zip) if depth < self.limits.max_depth => {
                let limit = self.limits.max_nested_zip;
                let mut bytes = Vec::new();
                let mut bounded = Bounded::new((&mut reader).take(limit + 1), self, budget);
                if let Err(e) = bounded.read_to_end(&mut bytes) {
                    sink.warning(skipped(origin, format!("unreadable: {e}")));
                    return;
                }
                if let Some(why) = bounded.stopped.take() {
                    sink.warning(skipped(origin, why));
                    return;
                }
                if bytes.len() as u64 > limit {
                    sink.warning(skipped(
                        origin,
                        format!("a nested zip over {limit} bytes is not opened"),
                    ));
                    return;
                }
                let opened = self.zip(
                    origin,
                    Cursor::new(&bytes[..]),
                    sink,
                    worker,
                    depth + 1,
                    budget,
                );
                if let Err(why) = opened {
                    sink.warning(skipped(origin, format!("{why}; scanned as it is")));
                    self.plain(origin, &mut Cursor::new(bytes), sink, worker, budget);
                }
                return;
            }
            // A tar or a compressed stream in an archive: streamed, its
            // first bytes kept so that it can be scanned as it is if it
            // does not open.
            Some(kind @ (Kind::Tar | Kind::Compressed(_))) if depth < self.limits.max_depth => {
                let mut recorder = Recorder {
                    inner: &mut reader,
                    seen: Vec::new(),
                    overflowed: false,
                };
                let opened = match kind {
                    Kind::Compressed(codec) => self.compressed(
                        codec,
                        origin,
                        &mut recorder,
                        sink,
                        worker,
                        depth + 1,
                        budget,
                    ),
                    _ => self.tar(origin, &mut recorder, sink, worker, depth + 1, budget),
                };
                let Err(why) = opened else {
                    return;
                };
                if recorder.overflowed {
                    // Streamed past what was kept: the rest is gone.
                    sink.warning(skipped(origin, format!("{why}; not scanned")));
                    return;
                }
                sink.warning(skipped(origin, format!("{why}; scanned as it is")));
                let seen = std::mem::take(&mut recorder.seen);
                let mut again = Cursor::new(seen).chain(recorder.inner);
                self.plain(origin, &mut again, sink, worker, budget);
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
        self.plain(origin, &mut reader, sink, worker, budget);
    }

    /// Scans a member's bytes as they are, within the limits.
    fn plain<S: Sink>(
        &self,
        origin: &Origin,
        reader: &mut dyn Read,
        sink: &S,
        worker: &mut S::Worker,
        budget: &mut Budget,
    ) {
        let mut bounded = Bounded::new(reader, self, budget);
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
            // What decoded before the error was scanned.
            let why = if e.kind() == io::ErrorKind::UnexpectedEof {
                format!("is cut short after {total} bytes; those were scanned")
            } else {
                format!("unreadable after {total} bytes ({e}); those were scanned")
            };
            sink.warning(skipped(origin, why));
        }
        if let Some(why) = bounded.stopped.take() {
            sink.warning(skipped(origin, why));
        }
        sink.input_done(worker, total);
    }
}

/// Why a compressed stream could not be read, in our words where the
/// cause is a limit of ours (`memory`: what this stream was allowed).
fn not_decoded(codec: Codec, e: &io::Error, memory: u64) -> String {
    let limit = memory >> 20;
    match codec {
        // libzstd's own words for its frameParameter_windowTooLarge.
        Codec::Zstd if e.to_string().contains("too much memory") => {
            format!("a zstd frame asks for a window over the {limit} MiB of memory allowed here")
        }
        Codec::Xz if e.kind() == io::ErrorKind::OutOfMemory => {
            format!("an xz block asks for a dictionary over the {limit} MiB of memory allowed here")
        }
        _ => format!("not readable {}: {e}", codec.name()),
    }
}

/// What the first 512 bytes of `r` say it is, and a reader of all of it
/// (those bytes, then the rest). An error before any byte is returned; one
/// after some is kept for the reader to give once those bytes are read, so
/// that what decoded before a failure is still scanned.
fn peek<'a>(mut r: impl Read + 'a) -> io::Result<(Option<Kind>, Box<dyn Read + 'a>)> {
    let mut head = vec![0u8; 512];
    let mut n = 0;
    let mut failed = None;
    while n < head.len() {
        match r.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    head.truncate(n);
    let kind = kind_of(&head);
    let rest: Box<dyn Read + 'a> = match failed {
        Some(e) if n == 0 => return Err(e),
        Some(e) => Box::new(Failed(Some(e))),
        None => Box::new(r),
    };
    Ok((kind, Box::new(Cursor::new(head).chain(rest))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_is_known_by_its_first_bytes_and_text_is_not_bzip2() {
        let mut tar = vec![0u8; 512];
        tar[257..262].copy_from_slice(b"ustar");
        let cases: [(&[u8], Option<Kind>); 11] = [
            (b"PK\x03\x04rest", Some(Kind::Zip)),
            (&tar, Some(Kind::Tar)),
            (b"\x1f\x8b\x08", Some(Kind::Compressed(Codec::Gzip))),
            (b"\xfd7zXZ\0rest", Some(Kind::Compressed(Codec::Xz))),
            (b"\x28\xb5\x2f\xfdrest", Some(Kind::Compressed(Codec::Zstd))),
            // A skippable frame first (pzstd writes one).
            (b"\x50\x2a\x4d\x18rest", Some(Kind::Compressed(Codec::Zstd))),
            (b"\x5f\x2a\x4d\x18rest", Some(Kind::Compressed(Codec::Zstd))),
            (b"BZh91AY&SYrest", Some(Kind::Compressed(Codec::Bzip2))),
            (
                b"BZh9\x17\x72\x45\x38\x50\x90",
                Some(Kind::Compressed(Codec::Bzip2)),
            ),
            // Text that starts like bzip2, without a block's magic.
            (b"BZh9 is how it starts", None),
            (b"BZh0AY&SY", None),
        ];
        for (head, kind) in cases {
            assert_eq!(kind_of(head), kind, "{:?}", String::from_utf8_lossy(head));
        }
    }

    #[test]
    fn a_nested_stream_gets_half_the_memory_of_the_one_around_it() {
        let mut budget = Budget::new(Arc::new(AtomicU64::new(0)));
        assert_eq!(budget.decoder_memory(), MAX_DECODER_MEMORY);
        budget.nesting += 1;
        assert_eq!(budget.decoder_memory(), MAX_DECODER_MEMORY / 2);
        budget.nesting += 1;
        assert_eq!(budget.decoder_memory(), MAX_DECODER_MEMORY / 4);
    }

    #[test]
    fn a_single_member_is_named_after_its_own_name_not_the_archives() {
        let outer = Origin::Member {
            archive: Arc::new(Origin::Stdin("-".into())),
            path: "secret.env.xz".into(),
        };
        assert_eq!(single_member_name(&outer, Codec::Xz), "secret.env");
        let deeper = Origin::Member {
            archive: Arc::new(outer),
            path: "logs/app.log.zst".into(),
        };
        assert_eq!(single_member_name(&deeper, Codec::Zstd), "app.log");
        assert_eq!(single_member_name(&deeper, Codec::Gzip), "app.log.zst");
        let named = |path: &str, codec| single_member_name(&Origin::Stdin(path.into()), codec);
        assert_eq!(named("dist/x.tgz", Codec::Gzip), "x.tar");
        assert_eq!(named("CAPS.GZ", Codec::Gzip), "CAPS");
        assert_eq!(named(".zst", Codec::Zstd), "-");
        assert_eq!(named("noext", Codec::Xz), "noext");
        // A multi-byte character where a suffix would start.
        assert_eq!(named("résumé", Codec::Gzip), "résumé");
    }
}
