//! `keywarden history`: all of a repository's history, or a commit range.

use super::ConfigArgs;
use super::output::Output;
use super::progress::Progress;
use super::scan_cmd::{ReportArgs, finish_scan, load_rules, parse_size};
use anyhow::bail;
use clap::Args;
use keywarden::scan::{Baseline, HistoryOptions, ScanStats, Scanner};
use std::path::PathBuf;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// Repository (work tree or bare); default the current directory.
    #[arg(value_name = "REPO", default_value = ".")]
    pub repo: PathBuf,

    /// Only commits in BASE..HEAD, and only secrets they added.
    #[arg(long, value_name = "BASE..HEAD", conflicts_with = "since")]
    pub range: Option<String>,

    /// Only commits after REV up to HEAD (REV..HEAD), and only secrets they
    /// added.
    #[arg(long, value_name = "REV")]
    pub since: Option<String>,

    /// List every commit and path that carries each secret, not only the
    /// earliest per path.
    #[arg(long)]
    pub all_occurrences: bool,

    /// Also scan blobs no ref reaches (dangling objects), reported without
    /// a commit.
    #[arg(long, conflicts_with_all = ["range", "since"])]
    pub all_objects: bool,

    /// Skip (with a warning) blobs larger than this.
    #[arg(long, value_name = "SIZE", default_value = "256MiB", value_parser = parse_size)]
    pub max_file_size: u64,

    /// Worker threads (default: one per core).
    #[arg(long, short = 'j', value_name = "N", default_value_t = 0)]
    pub threads: usize,

    #[command(flatten)]
    pub config: ConfigArgs,

    #[command(flatten)]
    pub report: ReportArgs,
}

pub fn run(args: HistoryArgs) -> anyhow::Result<u8> {
    if !args.repo.exists() {
        bail!("{}: no such file or directory", args.repo.display());
    }
    let rule_set = load_rules(&args.config, &args.repo)?;
    let baseline = args
        .report
        .baseline
        .as_deref()
        .map(Baseline::load)
        .transpose()?;
    let scanner = Scanner::new(&rule_set)?;
    let output = Output::open(args.report.output.as_deref())?;
    let opts = HistoryOptions {
        range: args.range.clone().or_else(|| args.since.clone()),
        all_occurrences: args.all_occurrences,
        all_objects: args.all_objects,
        threads: args.threads,
        max_file_size: args.max_file_size,
    };
    let started = Instant::now();
    let stats = ScanStats::default();
    let progress = Progress::start(!args.report.quiet);
    let on_warning =
        |w: keywarden::sources::SourceWarning| progress.println(&format!("warning: {w}"));
    let (done, ticks) = std::sync::mpsc::channel::<()>();
    let scanned = std::thread::scope(|s| {
        if progress.is_visible() {
            let (progress, stats) = (&progress, &stats);
            s.spawn(move || {
                while let Err(RecvTimeoutError::Timeout) =
                    ticks.recv_timeout(Duration::from_millis(100))
                {
                    progress.update(stats);
                }
            });
        }
        let r = scanner.scan_history(&args.repo, &opts, &stats, &on_warning);
        drop(done);
        r
    });
    drop(progress);
    let scanned = scanned?;
    if !args.report.quiet {
        for note in &scanned.notes {
            eprintln!("note: {note}");
        }
    }
    finish_scan(
        scanned.result,
        baseline.as_ref(),
        &rule_set,
        &args.report,
        output,
        &stats,
        started,
    )
}
