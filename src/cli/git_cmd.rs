//! `keywarden staged` and `keywarden hook install|uninstall`.

use super::ConfigArgs;
use super::scan_cmd::{Prepared, ReportArgs};
use clap::{Args, Subcommand};
use keywarden::hook;
use keywarden::scan::ScanStats;
use keywarden::sources::git;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct StagedArgs {
    /// Repository; default the current directory.
    #[arg(value_name = "REPO", default_value = ".")]
    pub repo: PathBuf,
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub report: ReportArgs,
}

#[derive(Subcommand)]
pub enum HookCommand {
    /// Write .git/hooks/pre-commit (honours core.hooksPath) to run
    /// `keywarden staged`.
    Install {
        /// The repository (any directory in its work tree).
        #[arg(value_name = "REPO", default_value = ".")]
        repo: PathBuf,
        /// Replace a pre-commit hook keywarden did not write.
        #[arg(long)]
        force: bool,
    },
    /// Remove the pre-commit hook if keywarden wrote it.
    Uninstall {
        /// The repository (any directory in its work tree).
        #[arg(value_name = "REPO", default_value = ".")]
        repo: PathBuf,
    },
}

pub fn run_staged(args: StagedArgs) -> anyhow::Result<u8> {
    let repo = git::open(&args.repo)?;
    let root = repo
        .workdir()
        .map(PathBuf::from)
        .unwrap_or_else(|| args.repo.clone());
    let prepared = Prepared::new(&args.config, &root, &args.report)?;
    let started = Instant::now();
    let stats = ScanStats::default();
    let on_warning = |w: keywarden::sources::SourceWarning| {
        eprintln!("warning: {}", keywarden::report::printable(&w.to_string()))
    };
    let mut result = prepared
        .scanner
        .scan_staged(&args.repo, &stats, &on_warning)?;
    if let Some(b) = &prepared.baseline {
        result.apply_baseline(b);
    }
    let paths: Vec<(String, u64)> = result
        .findings
        .iter()
        .map(|f| (f.path.clone(), f.line))
        .collect();
    let mut report = args.report.clone();
    report.quiet = true;
    // The baseline is applied above, before the paths are listed.
    let prepared = Prepared {
        baseline: None,
        ..prepared
    };
    let code = prepared.finish(result, &report, &stats, started)?;
    if !paths.is_empty() {
        eprintln!(
            "keywarden: this commit would add {} secret(s):",
            paths.len()
        );
        for (path, line) in &paths {
            eprintln!("  {}:{line}", keywarden::report::printable(path));
        }
        eprintln!(
            "Remove each from the file, then re-stage it (`git add FILE`), or unstage the file with \
             `git restore --staged FILE`.\nA false positive: add `keywarden:allow` in a comment on its line."
        );
    }
    Ok(code)
}

pub fn run_hook(cmd: HookCommand) -> anyhow::Result<u8> {
    match cmd {
        HookCommand::Install { repo, force } => {
            let exe = std::env::current_exe()?;
            let path = hook::install(&repo, &exe, force)?;
            println!("installed {}", path.display());
        }
        HookCommand::Uninstall { repo } => match hook::uninstall(&repo)? {
            Some(path) => println!("removed {}", path.display()),
            None => println!("no pre-commit hook installed"),
        },
    }
    Ok(0)
}
