//! A progress line on stderr while a scan runs — only when stderr is a
//! terminal, so CI logs and pipes stay clean.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use keywarden::scan::ScanStats;
use std::io::IsTerminal;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// Shows scan counters until dropped.
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Starts a spinner if stderr is a terminal and `enabled`.
    pub fn start(enabled: bool) -> Self {
        let bar = (enabled && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress { bar }
    }

    /// True when a progress line is being drawn.
    pub fn is_visible(&self) -> bool {
        self.bar.is_some()
    }

    /// Refreshes the line from the counters.
    pub fn update(&self, stats: &ScanStats) {
        if let Some(bar) = &self.bar {
            let commits = stats.commits.load(Relaxed);
            let commits = if commits > 0 {
                format!("{commits} commits, ")
            } else {
                String::new()
            };
            bar.set_message(format!(
                "{commits}{} files, {}, {} findings",
                stats.files.load(Relaxed),
                bytesize::ByteSize(stats.bytes.load(Relaxed))
                    .display()
                    .iec(),
                stats.findings.load(Relaxed),
            ));
        }
    }

    /// Prints a line without tearing the progress line.
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }
}

/// Runs `scan` while a progress line (when visible) is refreshed from
/// `stats`; `scan` gets the warning printer.
pub fn with_progress<T>(
    quiet: bool,
    stats: &ScanStats,
    scan: impl FnOnce(&(dyn Fn(keywarden::sources::SourceWarning) + Sync)) -> T,
) -> T {
    let progress = Progress::start(!quiet);
    let on_warning = |w: keywarden::sources::SourceWarning| {
        progress.println(&format!(
            "warning: {}",
            keywarden::report::printable(&w.to_string())
        ))
    };
    let (done, ticks) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|s| {
        if progress.is_visible() {
            let progress = &progress;
            s.spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    ticks.recv_timeout(Duration::from_millis(100))
                {
                    progress.update(stats);
                }
            });
        }
        let result = scan(&on_warning);
        drop(done);
        result
    })
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
