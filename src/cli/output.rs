//! Where reports go: stdout (styled when it is a terminal) or a file.

use anyhow::Context;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// A report destination. Regular files are written to a temporary name
/// next to them and renamed when complete, so a failed run never leaves
/// half a report. Anything else that already exists (`/dev/null`,
/// `/dev/stdout`, a FIFO) is written in place: renaming over it would
/// replace the device or pipe with a plain file.
pub enum Output {
    Stdout(anstream::AutoStream<io::StdoutLock<'static>>),
    /// An existing device, pipe or socket, written in place.
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
        // Through symlinks: the report replaces the file a link points to,
        // not the link.
        let target = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        if std::fs::metadata(&target).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
            let file = File::options()
                .write(true)
                .open(&target)
                .with_context(|| format!("cannot open {}", path.display()))?;
            return Ok(Output::Stream(BufWriter::new(anstream::StripStream::new(
                file,
            ))));
        }
        let tmp = temp_name(&target);
        let file =
            File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        Ok(Output::File {
            writer: BufWriter::new(anstream::StripStream::new(file)),
            tmp: TempFile(Some(tmp)),
            path: target,
        })
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

fn temp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.keywarden-{}.tmp", std::process::id()))
}
