//! `keywarden history`: all of a repository's history, or a commit range.

use super::ConfigArgs;
use super::progress::with_progress;
use super::scan_cmd::{Prepared, ReportArgs, parse_size};
use anyhow::bail;
use clap::Args;
use keywarden::scan::{HistoryOptions, ScanStats};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// Repository (work tree or bare); default the current directory.
    #[arg(value_name = "REPO", default_value = ".")]
    pub repo: PathBuf,

    /// Only commits in BASE..HEAD (or A...B: on either side since they
    /// parted), and only secrets they added.
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

    /// Exit 2 when anything could not be scanned (a corrupt or missing
    /// object, a blob over --max-file-size) or a range holds no commits,
    /// after reporting what was found; also checks that every object read
    /// hashes to its id (off by default, for speed).
    #[arg(long)]
    pub strict: bool,

    /// Worker threads (default: one per core).
    #[arg(
        long,
        short = 'j',
        value_name = "N",
        default_value_t = 0,
        hide_default_value = true
    )]
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
    if let Some(range) = args.range.as_deref().filter(|r| !r.contains("..")) {
        return Err(keywarden::sources::git::GitError::NotARange(range.to_string()).into());
    }
    let prepared = Prepared::new(&args.config, &args.repo, &args.report)?;
    let opts = HistoryOptions {
        range: args
            .range
            .clone()
            .or_else(|| args.since.as_ref().map(|rev| format!("{rev}..HEAD"))),
        all_occurrences: args.all_occurrences,
        all_objects: args.all_objects,
        threads: args.threads,
        max_file_size: args.max_file_size,
    };
    // The scan reads each commit, tree and blob once, so libgit2's object
    // cache (up to 256 MiB for the process) would only hold objects never
    // asked for again: off, it halves peak RSS on cargo's history
    // (BENCHMARKS.md) at no cost in time.
    git2::opts::enable_caching(false);
    // libgit2 re-hashes every object it reads to prove that it is what its
    // id says: a third of the time on cargo's history (BENCHMARKS.md), and
    // neither `git cat-file` nor the peer scanners do it. A damaged object
    // still fails to inflate or parse; `--strict` keeps the proof.
    git2::opts::strict_hash_verification(args.strict);
    let started = Instant::now();
    let stats = ScanStats::default();
    let scanned = with_progress(args.report.quiet, &stats, |on_warning| {
        prepared
            .scanner
            .scan_history(&args.repo, &opts, &stats, on_warning)
    })?;
    if !args.report.quiet {
        for note in &scanned.notes {
            eprintln!("note: {note}");
        }
    }
    if let Some(range) = &scanned.empty_range {
        eprintln!("keywarden: warning: range {range} holds no commits: nothing was scanned");
    }
    let code = prepared.finish(scanned.result, &args.report, &stats, started)?;
    if args.strict
        && let Some(range) = &scanned.empty_range
    {
        eprintln!("keywarden: error: --strict: range {range} holds no commits");
        return Ok(super::EXIT_ERROR);
    }
    let skipped = stats.warnings.load(std::sync::atomic::Ordering::Relaxed);
    if args.strict && skipped > 0 {
        eprintln!(
            "keywarden: error: --strict: {skipped} object{} could not be scanned (see the warnings)",
            if skipped == 1 { "" } else { "s" }
        );
        return Ok(super::EXIT_ERROR);
    }
    Ok(code)
}
