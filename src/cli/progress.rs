//! A progress line on stderr while a scan runs — only when stderr is a
//! terminal, so CI logs and pipes stay clean.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use keywarden::scan::{Phase, ScanStats};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// Shows scan counters until dropped.
pub struct Progress {
    bar: Option<ProgressBar>,
    /// The phase last shown and when it began (for the ETA).
    phase_started: Mutex<(Phase, Instant)>,
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
        Progress {
            bar,
            phase_started: Mutex::new((Phase::Files, Instant::now())),
        }
    }

    /// True when a progress line is being drawn.
    pub fn is_visible(&self) -> bool {
        self.bar.is_some()
    }

    /// Refreshes the line from the counters.
    pub fn update(&self, stats: &ScanStats) {
        if let Some(bar) = &self.bar {
            let phase = stats.phase();
            let mut started = self.phase_started.lock().unwrap_or_else(|e| e.into_inner());
            if started.0 != phase {
                *started = (phase, Instant::now());
            }
            bar.set_message(message(stats, started.1.elapsed()));
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

/// The progress line for `stats`, `in_phase` after the current phase began.
fn message(stats: &ScanStats, in_phase: Duration) -> String {
    let findings = stats.findings.load(Relaxed);
    let bytes = bytesize::ByteSize(stats.bytes.load(Relaxed))
        .display()
        .iec();
    let listed = stats.walk.listed.load(Relaxed);
    let walked = stats.walk.walked.load(Relaxed);
    let percent = |done: u64, total: u64| (done * 100).checked_div(total).unwrap_or(100).min(100);
    match stats.phase() {
        Phase::Files => format!(
            "{} files, {bytes}, {findings} findings",
            stats.files.load(Relaxed)
        ),
        Phase::Walking if walked == 0 || walked >= listed => format!("walking commits: {listed}"),
        Phase::Walking => format!(
            "walking trees: {walked}/{listed} commits ({}%)",
            percent(walked, listed)
        ),
        Phase::Blobs => {
            let total = stats.blobs_total.load(Relaxed);
            let done = stats.files.load(Relaxed).min(total);
            let eta = match done {
                0 => String::new(),
                _ if done >= total => String::new(),
                _ if in_phase < Duration::from_secs(1) => ", ETA …".to_string(),
                _ => {
                    let left = in_phase.as_secs_f64() * (total - done) as f64 / done as f64;
                    format!(", ETA {}", short_duration(left))
                }
            };
            format!(
                "{listed} commits; blobs {done}/{total} ({}%), {bytes}, {findings} findings{eta}",
                percent(done, total)
            )
        }
    }
}

/// `42s`, `3m05s`, `1h02m`.
fn short_duration(secs: f64) -> String {
    let s = secs.ceil() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s / 60 % 60),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_phases_say_what_is_done_and_how_far() {
        let stats = ScanStats::default();
        stats.set_phase(Phase::Walking);
        stats.walk.listed.store(23_800, Relaxed);
        assert_eq!(message(&stats, Duration::ZERO), "walking commits: 23800");
        stats.walk.walked.store(5_950, Relaxed);
        assert_eq!(
            message(&stats, Duration::ZERO),
            "walking trees: 5950/23800 commits (25%)"
        );
        stats.walk.walked.store(23_800, Relaxed);
        stats.blobs_total.store(1_000, Relaxed);
        stats.set_phase(Phase::Blobs);
        stats.files.store(250, Relaxed);
        stats.bytes.store(3 << 20, Relaxed);
        let line = message(&stats, Duration::from_secs(10));
        assert_eq!(
            line,
            "23800 commits; blobs 250/1000 (25%), 3.0 MiB, 0 findings, ETA 30s"
        );
        assert!(message(&stats, Duration::from_millis(200)).ends_with("ETA …"));
        stats.files.store(1_000, Relaxed);
        assert!(message(&stats, Duration::from_secs(40)).contains("blobs 1000/1000 (100%)"));
    }

    #[test]
    fn short_durations_read_at_a_glance() {
        assert_eq!(short_duration(0.2), "1s");
        assert_eq!(short_duration(185.0), "3m05s");
        assert_eq!(short_duration(3720.0), "1h02m");
    }
}
