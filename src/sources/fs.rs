//! Files under one or more roots, walked in parallel by the `ignore` crate.
//!
//! Honours `.gitignore`/`.ignore` unless told not to, includes hidden files
//! such as `.env`, never enters `.git`, follows symbolic links only when
//! asked. Small files are read into a per-thread buffer; large ones are
//! memory-mapped and cut into chunks whose pages are released once
//! scanned, so a 4 GB file does not need 4 GB of memory.

use super::{CHUNK_SIZE, Chunker, Origin, Sink, SourceWarning, Unit, looks_binary};
use ignore::{WalkBuilder, WalkState};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Files at least this large are memory-mapped instead of read.
const MMAP_THRESHOLD: u64 = CHUNK_SIZE as u64;

/// What to walk and how.
#[derive(Debug, Clone)]
pub struct WalkOptions {
    pub roots: Vec<PathBuf>,
    /// Honour `.gitignore`, `.ignore` and git's exclude files.
    pub respect_ignore: bool,
    pub follow_links: bool,
    /// Files larger than this are skipped with a warning.
    pub max_file_size: u64,
    /// Worker threads; 0 picks one per core.
    pub threads: usize,
    /// Context shared between chunks of a large file (see the matcher).
    pub overlap: usize,
    /// Files never scanned, such as the configuration file in use (its
    /// rule examples are not leaks). Compared by canonical path.
    pub exclude: Vec<PathBuf>,
    /// How paths under each root are shown: a root (as given in `roots`)
    /// and the path it is shown as, e.g. `("../repo/src", "src")`. A path
    /// under no listed root is shown as walked.
    pub shown_as: Vec<(PathBuf, PathBuf)>,
    /// Opens archives as their members; `None`: scans them as they are.
    pub archives: Option<std::sync::Arc<super::archive::Expander>>,
}

impl WalkOptions {
    /// The path reports show for `path` (as walked).
    fn shown(&self, path: &Path) -> PathBuf {
        for (root, shown) in &self.shown_as {
            if let Ok(rest) = path.strip_prefix(root) {
                return if rest.as_os_str().is_empty() {
                    shown.clone()
                } else {
                    shown.join(rest)
                };
            }
        }
        path.to_path_buf()
    }

    fn is_excluded(&self, path: &Path) -> bool {
        // Canonicalise only when the file name already matches.
        self.exclude.iter().any(|x| {
            x.file_name() == path.file_name() && std::fs::canonicalize(path).is_ok_and(|p| &p == x)
        })
    }
}

/// Walks `opts.roots` and feeds every regular file to `sink`, except those
/// whose display path `skip` accepts.
pub fn walk<S: Sink>(opts: &WalkOptions, skip: &(dyn Fn(&str) -> bool + Sync), sink: &S) {
    let Some((first, rest)) = opts.roots.split_first() else {
        return;
    };
    let mut builder = WalkBuilder::new(first);
    for root in rest {
        builder.add(root);
    }
    builder
        .standard_filters(opts.respect_ignore)
        .hidden(false)
        .follow_links(opts.follow_links)
        .threads(opts.threads)
        .filter_entry(|e| e.file_name() != ".git");
    builder.build_parallel().run(|| {
        let mut worker = sink.new_worker();
        let mut buf = Vec::new();
        Box::new(move |entry| {
            match entry {
                Err(err) => sink.warning(classify_walk_error(err)),
                Ok(entry) => visit(&entry, opts, skip, sink, &mut worker, &mut buf),
            }
            WalkState::Continue
        })
    });
}

fn visit<S: Sink>(
    entry: &ignore::DirEntry,
    opts: &WalkOptions,
    skip: &(dyn Fn(&str) -> bool + Sync),
    sink: &S,
    worker: &mut S::Worker,
    buf: &mut Vec<u8>,
) {
    let Some(ft) = entry.file_type() else {
        return;
    };
    let origin = Origin::File(opts.shown(entry.path()));
    if ft.is_symlink() {
        // Only reached when not following links.
        if std::fs::metadata(entry.path()).is_err() {
            sink.warning(SourceWarning::BrokenLink {
                path: origin.display_path(),
            });
        }
        return;
    }
    if ft.is_dir() || skip(&origin.display_path()) || opts.is_excluded(entry.path()) {
        return;
    }
    // FIFOs, sockets and devices are not read: opening a FIFO would block
    // the walk, and a device may never end.
    if !ft.is_file() {
        sink.warning(SourceWarning::NotAFile {
            path: origin.display_path(),
            kind: special_kind(&ft),
        });
        return;
    }
    if let Err(warning) = scan_file(&origin, entry.path(), opts, sink, worker, buf) {
        sink.warning(warning);
    }
}

/// What a walked entry that is neither a file, a directory nor a link is.
fn special_kind(ft: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return "a FIFO";
        }
        if ft.is_socket() {
            return "a socket";
        }
        if ft.is_block_device() || ft.is_char_device() {
            return "a device";
        }
    }
    let _ = ft;
    "a special file"
}

fn scan_file<S: Sink>(
    origin: &Origin,
    path: &Path,
    opts: &WalkOptions,
    sink: &S,
    worker: &mut S::Worker,
    buf: &mut Vec<u8>,
) -> Result<(), SourceWarning> {
    let unreadable = |error| SourceWarning::Unreadable {
        path: origin.display_path(),
        error,
    };
    let mut file = File::open(path).map_err(unreadable)?;
    let size = file.metadata().map_err(unreadable)?.len();
    if size > opts.max_file_size {
        return Err(SourceWarning::TooLarge {
            path: origin.display_path(),
            size,
            limit: opts.max_file_size,
        });
    }
    if size >= MMAP_THRESHOLD {
        scan_mapped(origin, &file, opts, sink, worker).map_err(unreadable)?;
        sink.input_done(worker, size);
        return Ok(());
    }
    buf.clear();
    file.read_to_end(buf).map_err(unreadable)?;
    if let Some(archives) = &opts.archives
        && super::archive::kind_of(buf).is_some()
        && archives
            .expand_seekable(origin, std::io::Cursor::new(&buf[..]), sink, worker)
            .map_err(unreadable)?
    {
        return Ok(());
    }
    sink.unit(
        worker,
        &Unit {
            origin,
            data: buf,
            keep: 0..buf.len(),
            start: super::Position::START,
            binary: looks_binary(buf),
            decoded: None,
        },
    );
    sink.input_done(worker, buf.len() as u64);
    Ok(())
}

/// The read buffer of a large archive.
const ARCHIVE_BUFFER: usize = 1 << 20;

fn scan_mapped<S: Sink>(
    origin: &Origin,
    file: &File,
    opts: &WalkOptions,
    sink: &S,
    worker: &mut S::Worker,
) -> std::io::Result<()> {
    let overlap = opts.overlap;
    // SAFETY: the map is read-only and private; a file truncated by another
    // process while being scanned can fault, as with any mmap reader.
    let mut map = unsafe { memmap2::Mmap::map(file)? };
    map.advise(memmap2::Advice::Sequential)?;
    if let Some(archives) = &opts.archives
        && super::archive::kind_of(&map[..map.len().min(512)]).is_some()
    {
        // Read, not mapped: the map's pages would stay resident as the
        // archive is read (a 4 GiB member, 4 GiB of RSS); reads go through
        // the page cache and a buffer (benches/archive_rss.sh).
        drop(map);
        let mut reader = std::io::BufReader::with_capacity(ARCHIVE_BUFFER, file);
        std::io::Seek::rewind(&mut reader)?;
        if archives.expand_seekable(origin, reader, sink, worker)? {
            return Ok(());
        }
        // Not an archive after all: scanned as it is.
        // SAFETY: as above.
        map = unsafe { memmap2::Mmap::map(file)? };
        map.advise(memmap2::Advice::Sequential)?;
    }
    let binary = looks_binary(&map);
    let mut released = 0usize;
    Chunker::new(overlap).slices(&map, |chunk| {
        sink.unit(
            worker,
            &Unit {
                origin,
                data: chunk.data,
                keep: chunk.keep.clone(),
                start: chunk.start,
                binary,
                decoded: None,
            },
        );
        // Pages before the next chunk's context are never read again.
        let next_data = (chunk.start.offset as usize + chunk.keep.end).saturating_sub(overlap);
        let page_end = next_data & !4095;
        if page_end > released {
            // SAFETY: dropping clean pages of a read-only file mapping only
            // makes later reads fault them in again; nothing reads them.
            let _ = unsafe {
                map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    released,
                    page_end - released,
                )
            };
            released = page_end;
        }
    });
    Ok(())
}

/// Turns a walk error into a warning naming the path as reports do (no
/// leading `./`). ignore nests its errors (a path around a depth around an
/// I/O error, in either order): the path is taken from any level.
fn classify_walk_error(err: ignore::Error) -> SourceWarning {
    classify_nested(err, None)
}

fn classify_nested(err: ignore::Error, path: Option<PathBuf>) -> SourceWarning {
    let shown = |p: &Option<PathBuf>| {
        p.as_ref()
            .map(|p| Origin::File(p.clone()).display_path())
            .unwrap_or_else(|| "(unknown path)".to_string())
    };
    match err {
        ignore::Error::WithPath { path, err } => classify_nested(*err, Some(path)),
        ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
            classify_nested(*err, path)
        }
        ignore::Error::Loop { child, .. } => SourceWarning::LinkLoop {
            path: Origin::File(child).display_path(),
        },
        // Not found where a link stands: the link is broken (a file removed
        // during the walk is reported as unreadable).
        ignore::Error::Io(e)
            if e.kind() == std::io::ErrorKind::NotFound
                && path
                    .as_ref()
                    .and_then(|p| p.symlink_metadata().ok())
                    .is_some_and(|m| m.file_type().is_symlink()) =>
        {
            SourceWarning::BrokenLink { path: shown(&path) }
        }
        ignore::Error::Io(error) if path.is_some() => SourceWarning::Unreadable {
            path: shown(&path),
            error,
        },
        other => match path {
            Some(_) => SourceWarning::Walk(format!("{}: {other}", shown(&path))),
            None => SourceWarning::Walk(other.to_string()),
        },
    }
}
