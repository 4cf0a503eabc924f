//! Where reports go: stdout (styled when it is a terminal) or a file.

use anyhow::Context;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// A report destination. Regular files are written to a temporary name
/// next to them and renamed when complete, so a failed run never leaves
/// half a report. The process's own streams (`/dev/stdout`, `/dev/fd/N`)
/// and existing devices and FIFOs (`/dev/null`) are written in place:
/// renaming over them would replace them with a plain file. A symlink is
/// replaced, not followed, as before: following it would let a link planted
/// in a shared directory redirect the report.
pub enum Output {
    Stdout(anstream::AutoStream<io::StdoutLock<'static>>),
    /// An existing device or pipe, or one of the process's own streams,
    /// written in place.
    Stream(BufWriter<anstream::StripStream<File>>),
    File {
        writer: BufWriter<anstream::StripStream<File>>,
        tmp: TempFile,
        path: PathBuf,
    },
}

/// A temporary file removed on drop unless it was moved into place.
pub struct TempFile(Option<PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Output {
    /// Opens `path`, or stdout when `None`.
    pub fn open(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else {
            return Ok(Output::Stdout(anstream::AutoStream::auto(
                io::stdout().lock(),
            )));
        };
        if let Some(fd) = own_descriptor(path) {
            // /dev/stdout and the like: written through the process's own
            // open file, so `>> log` is appended to, not replaced.
            // SAFETY: stdout and stderr stay open for the whole process; the
            // descriptor is only borrowed to duplicate it.
            let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
            let file = File::from(
                borrowed
                    .try_clone_to_owned()
                    .with_context(|| format!("cannot write to {}", path.display()))?,
            );
            return Ok(Output::stream(file));
        }
        if std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
            // A device or pipe: opened where it is, never renamed over.
            let file = File::options()
                .write(true)
                .open(path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            // Swapped for a regular file since the check: the usual way.
            if !file.metadata().is_ok_and(|m| m.is_file()) {
                return Ok(Output::stream(file));
            }
        }
        let tmp = temp_name(path);
        let mut options = File::options();
        options.write(true).create_new(true);
        // A report replacing an existing one keeps its permissions.
        if let Some(m) = std::fs::metadata(path).ok().filter(|m| m.is_file()) {
            use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
            options.mode(m.permissions().mode() & 0o7777);
        }
        let file = options
            .open(&tmp)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(Output::File {
            writer: BufWriter::new(anstream::StripStream::new(file)),
            tmp: TempFile(Some(tmp)),
            path: path.to_path_buf(),
        })
    }

    fn stream(file: File) -> Self {
        Output::Stream(BufWriter::new(anstream::StripStream::new(file)))
    }

    pub fn writer(&mut self) -> &mut dyn Write {
        match self {
            Output::Stdout(w) => w,
            Output::Stream(w) => w,
            Output::File { writer, .. } => writer,
        }
    }

    /// Flushes and, for a file, moves it into place.
    pub fn finish(self) -> anyhow::Result<()> {
        match self {
            Output::Stdout(mut w) => w.flush().context("cannot write to stdout"),
            Output::Stream(mut w) => w.flush().context("cannot write the report"),
            Output::File {
                writer,
                mut tmp,
                path,
            } => {
                let tmp_path = tmp.0.clone().unwrap_or_default();
                let file = writer
                    .into_inner()
                    .map(anstream::StripStream::into_inner)
                    .map_err(|e| e.into_error())
                    .with_context(|| format!("cannot write {}", path.display()))?;
                file.sync_all()
                    .with_context(|| format!("cannot write {}", path.display()))?;
                std::fs::rename(&tmp_path, &path)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                tmp.0 = None;
                Ok(())
            }
        }
    }
}

/// 1 or 2 when `path` names this process's stdout or stderr
/// (`/dev/stdout`, `/dev/fd/1`, `/proc/self/fd/1`, and the same for 2).
fn own_descriptor(path: &Path) -> Option<i32> {
    match path.to_str()? {
        "/dev/stdout" | "/dev/fd/1" | "/proc/self/fd/1" => Some(1),
        "/dev/stderr" | "/dev/fd/2" | "/proc/self/fd/2" => Some(2),
        _ => None,
    }
}

fn temp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.keywarden-{}.tmp", std::process::id()))
}

/// Writes `rows` under `header` as columns two spaces apart, each as wide
/// as its widest cell. Cells are made [printable] first (rows written
/// before names were checked may hold control characters: shown escaped,
/// they cannot forge rows).
///
/// [printable]: keywarden::untrusted::printable
#[cfg(feature = "responder")]
pub fn write_table(out: &mut dyn Write, header: &[&str], rows: &[Vec<String>]) -> io::Result<()> {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|cell| keywarden::untrusted::printable(cell).into_owned())
                .collect()
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        writeln!(out, "{}", line.join("  ").trim_end())?;
    }
    Ok(())
}

// Only the responder's commands print JSON of stored or served text.
#[cfg(feature = "responder")]
/// Writes `value` as indented JSON in ASCII: every character outside
/// printable ASCII is a `\uXXXX` escape, so text from a store or a server
/// (C1 controls, DEL, bidi overrides) cannot drive the terminal it is
/// printed on, and a JSON reader gets the same strings back.
pub fn write_json_ascii(out: &mut dyn Write, value: &serde_json::Value) -> io::Result<()> {
    let mut ser = serde_json::Serializer::with_formatter(&mut *out, AsciiPretty::default());
    serde::Serialize::serialize(value, &mut ser).map_err(io::Error::other)?;
    writeln!(out)
}

/// serde_json's pretty formatter, with non-ASCII and DEL escaped.
#[cfg(feature = "responder")]
#[derive(Default)]
struct AsciiPretty(serde_json::ser::PrettyFormatter<'static>);

#[cfg(feature = "responder")]
impl serde_json::ser::Formatter for AsciiPretty {
    fn write_string_fragment<W: ?Sized + Write>(&mut self, w: &mut W, s: &str) -> io::Result<()> {
        for c in s.chars() {
            if c.is_ascii() && c != '\x7f' {
                w.write_all(&[c as u8])?;
            } else {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(w, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }
    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_value(w)
    }
}

#[cfg(all(test, feature = "responder"))]
mod json_tests {
    #[test]
    fn json_for_a_terminal_escapes_everything_outside_printable_ascii() {
        let value = serde_json::json!({"name": "a\u{9b}b\u{7f}c\u{202e}d\u{1F600}é\u{1b}"});
        let mut out = Vec::new();
        super::write_json_ascii(&mut out, &value).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.is_ascii(), "{text}");
        assert!(
            !text.contains('\u{7f}') && !text.contains('\u{1b}'),
            "{text}"
        );
        assert!(text.contains("\\ud83d\\ude00"), "{text}");
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, value);
    }
}
