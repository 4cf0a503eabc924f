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

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
