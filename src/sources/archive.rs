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

    /// What its files' names end with: taken off to name the one member.
    fn suffixes(self) -> &'static [&'static str] {
        match self {
            Codec::Gzip => &[".gz", ".tgz"],
            Codec::Bzip2 => &[".bz2", ".tbz2", ".tbz"],
            Codec::Xz => &[".xz", ".txz"],
            Codec::Zstd => &[".zst", ".tzst"],
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
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
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

/// Why an archive, or part of it, was not expanded.
fn skipped(archive: &Origin, what: String) -> SourceWarning {
    SourceWarning::Walk(format!(
        "{}: archive: {what}",
        crate::untrusted::one_line(&archive.display_path(), 300)
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
        let opened = match kind {
            Kind::Zip => self.zip(origin, input, sink, worker, 1, &mut budget),
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
            if !self.one_more_entry(origin, budget, sink) {
                return Ok(());
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
        self.tar_counted(origin, input, None, sink, worker, depth, budget)
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
            if !self.one_more_entry(origin, budget, sink) {
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
        Ok(())
    }

    /// A compressed stream: the tar inside it, or its one member, named
    /// after the file without the codec's suffix.
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
        let count = Arc::new(AtomicU64::new(0));
        let counted = Counting {
            inner: input,
            count: count.clone(),
        };
        let mut decoded: Box<dyn Read + '_> = match codec {
            Codec::Gzip => Box::new(flate2::read::MultiGzDecoder::new(counted)),
            Codec::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(counted)),
            Codec::Xz => Box::new(lzma_rust2::XzReader::new_mem_limit(
                io::BufReader::new(counted),
                true,
                (MAX_DECODER_MEMORY >> 10) as u32,
            )),
            Codec::Zstd => Box::new(ZstdFrames::new(io::BufReader::new(counted))),
        };
        // Tar inside, or one member: the first bytes tell.
        let mut head = vec![0u8; 512];
        match read_up_to(&mut decoded, &mut head) {
            Ok(n) => head.truncate(n),
            Err(e) => return Err(not_decoded(codec, &e)),
        }
        let tar_inside = kind_of(&head) == Some(Kind::Tar);
        let mut decoded = Cursor::new(head).chain(decoded);
        if tar_inside {
            return self.tar_counted(
                origin,
                &mut decoded,
                Some(count),
                sink,
                worker,
                depth,
                budget,
            );
        }
        let shown = origin.display_path();
        let name = Path::new(&shown)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = codec
            .suffixes()
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(&name)
            .to_string();
        let member_origin = Origin::Member {
            archive: Arc::new(origin.clone()),
            path: if name.is_empty() { "-".into() } else { name },
        };
        self.member(
            &member_origin,
            &mut decoded,
            None,
            Some(count),
            sink,
            worker,
            depth,
            budget,
        );
        Ok(())
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
                let opened = match kind {
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
                        let opened = self.zip(
                            origin,
                            Cursor::new(&bytes[..]),
                            sink,
                            worker,
                            depth + 1,
                            budget,
                        );
                        if let Err(why) = opened {
                            // In memory still: scanned as it is.
                            sink.warning(skipped(origin, format!("{why}; scanned as it is")));
                            let mut bytes = Cursor::new(bytes);
                            self.plain(
                                origin,
                                &mut bytes,
                                declared_compressed,
                                compressed,
                                sink,
                                worker,
                                budget,
                            );
                        }
                        return;
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
                    Kind::Compressed(codec) => {
                        self.compressed(codec, origin, &mut reader, sink, worker, depth + 1, budget)
                    }
                };
                if let Err(why) = opened {
                    // Streamed, not held: what was read is gone.
                    sink.warning(skipped(origin, format!("{why}; not scanned")));
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
        self.plain(
            origin,
            &mut reader,
            declared_compressed,
            compressed,
            sink,
            worker,
            budget,
        );
    }

    /// Scans a member's bytes as they are, within the limits.
    #[allow(clippy::too_many_arguments)]
    fn plain<S: Sink>(
        &self,
        origin: &Origin,
        reader: &mut dyn Read,
        declared_compressed: Option<u64>,
        compressed: Option<Arc<AtomicU64>>,
        sink: &S,
        worker: &mut S::Worker,
        budget: &mut Budget,
    ) {
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

/// Why a compressed stream could not be read, in our words where the
/// cause is a limit of ours.
fn not_decoded(codec: Codec, e: &io::Error) -> String {
    let limit = MAX_DECODER_MEMORY >> 20;
    let window = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<ruzstd::decoding::errors::FrameDecoderError>())
        .and_then(|inner| match inner {
            ruzstd::decoding::errors::FrameDecoderError::WindowSizeTooBig { requested, .. } => {
                Some(*requested)
            }
            _ => None,
        });
    match (codec, window) {
        (Codec::Zstd, Some(requested)) => format!(
            "a zstd frame asks for a window of {requested} bytes, over the {limit} MiB of memory allowed"
        ),
        (Codec::Xz, None) if e.kind() == io::ErrorKind::OutOfMemory => {
            format!("an xz block asks for a dictionary over the {limit} MiB of memory allowed")
        }
        _ => format!("not readable {}: {e}", codec.name()),
    }
}

/// The frames of a zstd stream one after another, skipping skippable
/// frames (as `zstd -d` does; pzstd and seekable zstd write several).
struct ZstdFrames<R> {
    source: R,
    frame: ruzstd::decoding::FrameDecoder,
    in_frame: bool,
}

impl<R: io::BufRead> ZstdFrames<R> {
    fn new(source: R) -> Self {
        let mut frame = ruzstd::decoding::FrameDecoder::new();
        frame.set_max_window_size(MAX_DECODER_MEMORY);
        ZstdFrames {
            source,
            frame,
            in_frame: false,
        }
    }
}

impl<R: io::BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use ruzstd::decoding::BlockDecodingStrategy;
        use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if !self.in_frame {
                if self.source.fill_buf()?.is_empty() {
                    return Ok(0);
                }
                match self.frame.reset(&mut self.source) {
                    Ok(()) => self.in_frame = true,
                    Err(FrameDecoderError::ReadFrameHeaderError(
                        ReadFrameHeaderError::SkipFrame { length, .. },
                    )) => {
                        let skip = u64::from(length);
                        let skipped =
                            io::copy(&mut (&mut self.source).take(skip), &mut io::sink())?;
                        if skipped < skip {
                            return Err(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                "a skippable frame is cut short",
                            ));
                        }
                        continue;
                    }
                    Err(e) => return Err(io::Error::other(e)),
                }
            }
            if self.frame.can_collect() == 0 && !self.frame.is_finished() {
                self.frame
                    .decode_blocks(&mut self.source, BlockDecodingStrategy::UptoBlocks(1))
                    .map_err(io::Error::other)?;
                continue;
            }
            let n = self.frame.read(buf)?;
            if n == 0 && self.frame.is_finished() {
                self.in_frame = false;
                continue;
            }
            return Ok(n);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_is_known_by_its_first_bytes_and_text_is_not_bzip2() {
        let mut tar = vec![0u8; 512];
        tar[257..262].copy_from_slice(b"ustar");
        let cases: [(&[u8], Option<Kind>); 9] = [
            (b"PK\x03\x04rest", Some(Kind::Zip)),
            (&tar, Some(Kind::Tar)),
            (b"\x1f\x8b\x08", Some(Kind::Compressed(Codec::Gzip))),
            (b"\xfd7zXZ\0rest", Some(Kind::Compressed(Codec::Xz))),
            (b"\x28\xb5\x2f\xfdrest", Some(Kind::Compressed(Codec::Zstd))),
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

    /// A zstd frame of `data` in raw blocks (as the format allows), so the
    /// test needs no encoder.
    fn raw_frame(data: &[u8]) -> Vec<u8> {
        // Single segment, a one-byte content size.
        let mut frame = vec![0x28, 0xb5, 0x2f, 0xfd, 0x20, data.len() as u8];
        let header = 1 | ((data.len() as u32) << 3);
        frame.extend_from_slice(&header.to_le_bytes()[..3]);
        frame.extend_from_slice(data);
        frame
    }

    #[test]
    fn zstd_frames_are_read_one_after_another_past_skippable_ones() {
        let mut stream = raw_frame(b"first\n");
        stream.extend_from_slice(&0x184d_2a50u32.to_le_bytes());
        stream.extend_from_slice(&3u32.to_le_bytes());
        stream.extend_from_slice(b"abc");
        stream.extend_from_slice(&raw_frame(b"second\n"));
        let mut out = String::new();
        ZstdFrames::new(&stream[..])
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "first\nsecond\n");
        // A skippable frame cut short is an error, not an early end.
        let mut cut = raw_frame(b"first\n");
        cut.extend_from_slice(&0x184d_2a50u32.to_le_bytes());
        cut.extend_from_slice(&100u32.to_le_bytes());
        cut.extend_from_slice(b"abc");
        let err = ZstdFrames::new(&cut[..])
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        // So is a frame cut short.
        let whole = raw_frame(b"a longer frame\n");
        assert!(
            ZstdFrames::new(&whole[..whole.len() - 4])
                .read_to_end(&mut Vec::new())
                .is_err()
        );
    }
}
