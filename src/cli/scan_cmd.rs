//! `keywarden scan`: directories, files and stdin.

use super::ConfigArgs;
use super::output::Output;
use super::progress::with_progress;
use anyhow::{Context, bail};
use clap::Args;
use clap::builder::TypedValueParser;
use keywarden::report::{self, Format, ReportContext};
use keywarden::rules::{self, RuleSet};
use keywarden::scan::{Baseline, IGNORE_FILE_NAME, Liveness, ScanResult, ScanStats, Scanner};
use keywarden::sources::fs::WalkOptions;
use keywarden::verify::{self, VerifyOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct ScanArgs {
    /// Files and directories to scan; `-` reads stdin.
    #[arg(value_name = "PATH", default_value = ".")]
    pub paths: Vec<PathBuf>,

    /// Scan files that .gitignore/.ignore would skip.
    #[arg(long)]
    pub no_ignore: bool,

    /// Follow symbolic links.
    #[arg(long)]
    pub follow: bool,

    /// Skip (with a warning) files larger than this, e.g. 10MiB, 1GB, 4096.
    #[arg(long, value_name = "SIZE", default_value = "256MiB", value_parser = parse_size)]
    pub max_file_size: u64,

    /// Worker threads (default: one per core).
    #[arg(
        long,
        short = 'j',
        value_name = "N",
        default_value_t = 0,
        hide_default_value = true
    )]
    pub threads: usize,

    /// Name for stdin in reports (with `-`).
    #[arg(long, value_name = "NAME", default_value = "<stdin>")]
    pub stdin_name: String,

    /// gitleaks' `--no-git`: `scan` always reads files as they are on disk
    /// (history is `keywarden history`), so it changes nothing.
    #[arg(long, hide = true)]
    pub no_git: bool,

    #[command(flatten)]
    pub config: ConfigArgs,

    #[command(flatten)]
    pub report: ReportArgs,
}

/// Report and exit-status flags shared by the scanning commands.
#[derive(Args, Debug, Clone)]
#[command(group(clap::ArgGroup::new("verifying").multiple(true)))]
pub struct ReportArgs {
    /// Report format.
    #[arg(long, short = 'f', value_name = "FORMAT", default_value = "text",
          alias = "report-format",
          value_parser = clap::builder::PossibleValuesParser::new(Format::NAMES)
              .map(|s| s.parse::<Format>().expect("listed format")))]
    pub format: Format,

    /// Write the report to FILE instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE", alias = "report-path")]
    pub output: Option<PathBuf>,

    /// Print secrets whole instead of redacted (`sk-or-v1-3fa...9c0`).
    #[arg(long)]
    pub show_secrets: bool,

    /// gitleaks' `--redact[=PERCENT]`: keywarden redacts unless
    /// --show-secrets, so it only refuses to be combined with that.
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "100",
          value_name = "PERCENT", conflicts_with = "show_secrets",
          value_parser = clap::value_parser!(u8).range(0..=100))]
    pub redact: Option<u8>,

    /// gitleaks' `-v/--verbose`: keywarden's text report already shows
    /// each finding, so it changes nothing.
    #[arg(long, short = 'v', hide = true)]
    pub verbose: bool,

    /// Do not report findings whose fingerprint is in this earlier JSON
    /// report.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,

    /// Also write all findings (secrets redacted) as a JSON baseline.
    #[arg(long, value_name = "FILE")]
    pub write_baseline: Option<PathBuf>,

    /// Exit status when secrets are found.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub exit_code: u8,

    /// Also write the report in FORMAT to FILE, from the same scan
    /// (repeatable), e.g. `--report sarif=keywarden.sarif`.
    #[arg(long = "report", value_name = "FORMAT=FILE", value_parser = parse_extra_report)]
    pub reports: Vec<(Format, PathBuf)>,

    /// No progress line and no summary on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,

    /// Ask each secret's provider whether it still works (rules with a
    /// verification, e.g. OpenRouter's `GET /api/v1/key`) and mark findings
    /// live, invalid or unknown. Sends each distinct secret once, only to
    /// the rule's host (or `--verify-url`).
    #[arg(long, group = "verifying")]
    pub verify: bool,

    /// Report, and fail on, only secrets the provider says are live (as
    /// trufflehog's flag): implies --verify; invalid, unknown and
    /// unverifiable findings are dropped, and counted on stderr.
    #[arg(long, group = "verifying")]
    pub only_verified: bool,

    /// Base URL for `--verify` instead of the rule's (default
    /// https://openrouter.ai), e.g. a gateway or a local `keywarden serve`.
    #[arg(long, value_name = "URL", requires = "verifying",
          value_parser = |s: &str| rules::check_base_url(s).map(|()| s.to_string()))]
    pub verify_url: Option<String>,

    /// Seconds each verification may take.
    #[arg(long, value_name = "SECS", default_value_t = 5, requires = "verifying",
          value_parser = clap::value_parser!(u64).range(1..=120))]
    pub verify_timeout: u64,
}

fn parse_extra_report(s: &str) -> Result<(Format, PathBuf), String> {
    let (format, file) = s
        .split_once('=')
        .ok_or_else(|| format!("expected FORMAT=FILE, got '{s}'"))?;
    if file.is_empty() {
        return Err(format!("no file in '{s}'"));
    }
    let format = format
        .parse::<Format>()
        .map_err(|e| format!("{e} (expected one of: {})", Format::NAMES.join(", ")))?;
    Ok((format, PathBuf::from(file)))
}

pub fn parse_size(s: &str) -> Result<u64, String> {
    s.trim()
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("invalid size '{s}': {e}"))
}

/// The configuration file to use: `--config`, or `.keywarden.toml` in
/// `root` when present.
pub fn config_path(config: &ConfigArgs, root: &Path) -> Option<PathBuf> {
    match (&config.config, &config.config_from) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(_)) => None,
        (None, None) => root_file(root, rules::CONFIG_FILE_NAME),
    }
}

/// `name` at the root of commit `rev` of the repository holding `root`,
/// as text, with the name it is shown under (`REV:name`).
fn file_from_rev(root: &Path, rev: &str, name: &str) -> anyhow::Result<Option<(String, String)>> {
    let dir = if root.is_dir() { root } else { Path::new(".") };
    let Some(bytes) = keywarden::sources::git::file_at(dir, rev, name)
        .with_context(|| format!("--config-from {rev}"))?
    else {
        return Ok(None);
    };
    let shown = format!("{rev}:{name}");
    let text =
        String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("{shown} is not UTF-8 text"))?;
    Ok(Some((shown, text)))
}

/// A file keywarden looks for beside what it scans (`.keywarden.toml`,
/// `.keywardenignore`): in the scan root (the first PATH if a directory,
/// else the current directory), else at the root of the git work tree
/// holding it.
pub fn root_file(root: &Path, name: &str) -> Option<PathBuf> {
    let dir = if root.is_dir() { root } else { Path::new(".") };
    let here = dir.join(name);
    if here.is_file() {
        return Some(here);
    }
    let tree = keywarden::sources::git::work_tree_root(&std::fs::canonicalize(dir).ok()?)?;
    Some(tree.join(name)).filter(|p| p.is_file())
}

/// How reports name paths under `root`: relative to the root of the git
/// work tree holding it, else relative to `root` itself (a file: as given),
/// so that one fingerprint, one baseline entry, serves however the path
/// is typed.
fn shown_as(root: &Path) -> (PathBuf, PathBuf) {
    let in_tree = std::fs::canonicalize(root).ok().and_then(|canon| {
        let dir = if canon.is_dir() {
            canon.clone()
        } else {
            canon.parent()?.to_path_buf()
        };
        let tree = keywarden::sources::git::work_tree_root(&dir)?;
        canon.strip_prefix(&tree).ok().map(Path::to_path_buf)
    });
    // Outside git: a directory's files relative to it; a file as given.
    let shown = in_tree.unwrap_or_else(|| match root.is_dir() {
        true => PathBuf::new(),
        false => root.to_path_buf(),
    });
    (root.to_path_buf(), shown)
}

/// The built-in rules extended by the configuration file, if any.
pub fn load_rules(config: &ConfigArgs, root: &Path) -> anyhow::Result<RuleSet> {
    let doc = match &config.config_from {
        Some(rev) => file_from_rev(root, rev, rules::CONFIG_FILE_NAME)?
            .map(|(name, text)| {
                rules::parse_document(&name, &text, rules::RuleOrigin::File(name.clone()))
            })
            .transpose()?,
        None => config_path(config, root)
            .map(|p| rules::load_config_file(&p))
            .transpose()?,
    };
    Ok(RuleSet::with_config(doc)?)
}

/// `.keywardenignore`: from `--config-from REV`, else found beside the
/// scan root.
fn load_ignore_file(config: &ConfigArgs, root: &Path) -> anyhow::Result<Option<Baseline>> {
    match &config.config_from {
        Some(rev) => Ok(file_from_rev(root, rev, IGNORE_FILE_NAME)?
            .map(|(name, text)| Baseline::parse_ignore_named(&name, &text))
            .transpose()?),
        None => Ok(root_file(root, IGNORE_FILE_NAME)
            .map(|p| Baseline::load_ignore_file(&p))
            .transpose()?),
    }
}

pub fn run(args: ScanArgs) -> anyhow::Result<u8> {
    let stdin = args.paths.iter().any(|p| p.as_os_str() == "-");
    if stdin && args.paths.len() > 1 {
        bail!("`-` (stdin) cannot be combined with other paths");
    }
    for p in args.paths.iter().filter(|p| p.as_os_str() != "-") {
        if std::fs::symlink_metadata(p).is_err() {
            bail!("{}: no such file or directory", p.display());
        }
    }
    let root = if stdin {
        Path::new(".")
    } else {
        args.paths[0].as_path()
    };
    let prepared = Prepared::new(&args.config, root, &args.report)?;
    let started = Instant::now();
    let stats = ScanStats::default();
    let result = with_progress(args.report.quiet, &stats, |on_warning| {
        if stdin {
            prepared
                .scanner
                .scan_reader(
                    std::io::stdin().lock(),
                    &args.stdin_name,
                    &stats,
                    on_warning,
                )
                .context("cannot read stdin")
        } else {
            let walk = WalkOptions {
                roots: args.paths.clone(),
                respect_ignore: !args.no_ignore,
                follow_links: args.follow,
                max_file_size: args.max_file_size,
                threads: args.threads,
                overlap: 0,
                exclude: config_path(&args.config, root)
                    .and_then(|p| std::fs::canonicalize(p).ok())
                    .into_iter()
                    .collect(),
                shown_as: args.paths.iter().map(|p| shown_as(p)).collect(),
                archives: None,
            };
            Ok(prepared.scanner.scan_paths(&walk, &stats, on_warning))
        }
    })?;
    prepared.finish(result, &args.report, &stats, started)
}

/// A `.keywarden.toml` found in the scanned tree belongs to whoever wrote
/// the tree: its verifications could send every key found to their host.
/// Only built-in rules and a `--config` the user named may verify.
fn distrust_discovered_verifiers(rule_set: &mut RuleSet) {
    for rule in &mut rule_set.rules {
        if rule.verify.is_some() && !matches!(rule.origin, rules::RuleOrigin::Builtin(_)) {
            eprintln!(
                "keywarden: warning: not verifying rule '{}' from {}: a configuration found in \
                 the scanned tree may not choose where secrets are sent (pass it with --config \
                 to trust it)",
                rule.id, rule.origin
            );
            rule.verify = None;
        }
    }
}

/// What every scanning command sets up before scanning: rules (with the
/// configuration), the baseline, the compiled scanner and the output.
pub struct Prepared {
    pub rule_set: RuleSet,
    pub baseline: Option<Baseline>,
    pub scanner: Scanner,
    pub output: Output,
}

impl Prepared {
    pub fn new(config: &ConfigArgs, root: &Path, report: &ReportArgs) -> anyhow::Result<Self> {
        let mut rule_set = load_rules(config, root)?;
        if (report.verify || report.only_verified) && config.config.is_none() {
            distrust_discovered_verifiers(&mut rule_set);
        }
        let mut baseline = report.baseline.as_deref().map(Baseline::load).transpose()?;
        if let Some(ignored) = load_ignore_file(config, root)? {
            baseline
                .get_or_insert_with(Baseline::default)
                .extend(ignored);
        }
        let scanner = Scanner::new(&rule_set)?
            .with_decode_depth(usize::from(config.max_decode_depth), &rule_set)
            .with_archives(config.archive_limits());
        let output = Output::open(report.output.as_deref())?;
        Ok(Prepared {
            rule_set,
            baseline,
            scanner,
            output,
        })
    }

    /// Writes the reports and picks the exit status (see [`finish_scan`]).
    pub fn finish(
        self,
        result: ScanResult,
        report: &ReportArgs,
        stats: &ScanStats,
        started: Instant,
    ) -> anyhow::Result<u8> {
        finish_scan(
            result,
            self.baseline.as_ref(),
            &self.rule_set,
            report,
            self.output,
            stats,
            started,
        )
    }
}

/// Writes the baseline and report, prints the summary, and picks the exit
/// status. Shared by every scanning command.
pub fn finish_scan(
    mut result: ScanResult,
    baseline: Option<&Baseline>,
    rule_set: &RuleSet,
    args: &ReportArgs,
    mut output: Output,
    stats: &ScanStats,
    started: Instant,
) -> anyhow::Result<u8> {
    if let Some(path) = &args.write_baseline {
        let mut out = Output::open(Some(path))?;
        let ctx = ReportContext {
            rules: &rule_set.rules,
            show_secrets: false,
        };
        report::write_report(out.writer(), Format::Json, &result.findings, &ctx)
            .with_context(|| format!("cannot write {}", path.display()))?;
        out.finish()?;
    }
    if let Some(b) = baseline {
        result.apply_baseline(b);
    }
    if args.verify || args.only_verified {
        let options = VerifyOptions {
            base_url: args.verify_url.clone(),
            timeout: Duration::from_secs(args.verify_timeout),
            ..VerifyOptions::default()
        };
        let s = verify::verify_findings(&mut result.findings, &rule_set.rules, &options);
        if !args.quiet {
            eprintln!(
                "keywarden: verified {} distinct secret{}: {} live, {} invalid, {} unknown{}",
                s.checked,
                if s.checked == 1 { "" } else { "s" },
                s.live,
                s.invalid,
                s.unknown,
                if s.unverifiable > 0 {
                    format!("; {} findings have no verification", s.unverifiable)
                } else {
                    String::new()
                }
            );
        }
    }
    if args.only_verified {
        let before = result.findings.len();
        let count = |l: Option<Liveness>| {
            result
                .findings
                .iter()
                .filter(|f| f.verification == l)
                .count()
        };
        let (invalid, unknown, none) = (
            count(Some(Liveness::Invalid)),
            count(Some(Liveness::Unknown)),
            count(None),
        );
        result
            .findings
            .retain(|f| f.verification == Some(Liveness::Live));
        let dropped = before - result.findings.len();
        if dropped > 0 {
            eprintln!(
                "keywarden: --only-verified: not reporting {dropped} finding{} not verified live \
                 ({invalid} invalid, {unknown} unknown, {none} without a verification)",
                if dropped == 1 { "" } else { "s" }
            );
        }
    }
    let ctx = ReportContext {
        rules: &rule_set.rules,
        show_secrets: args.show_secrets,
    };
    report::write_report(output.writer(), args.format, &result.findings, &ctx)
        .context("cannot write the report")?;
    output.finish()?;
    for (format, path) in &args.reports {
        let mut out = Output::open(Some(path))?;
        report::write_report(out.writer(), *format, &result.findings, &ctx)
            .with_context(|| format!("cannot write {}", path.display()))?;
        out.finish()?;
    }
    if !args.quiet {
        eprintln!("{}", summary(&result, stats, started.elapsed()));
    }
    Ok(if result.findings.is_empty() {
        0
    } else {
        args.exit_code
    })
}

fn summary(result: &ScanResult, stats: &ScanStats, elapsed: Duration) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    let files: std::collections::HashSet<_> = result.findings.iter().map(|f| &f.path).collect();
    let s = result.suppressed;
    let plural = |n: u64, one: &str| format!("{n} {one}{}", if n == 1 { "" } else { "s" });
    let scanned = match stats.phase() {
        keywarden::scan::Phase::Files => plural(stats.files.load(Relaxed), "file"),
        _ => format!(
            "{} of {}",
            plural(stats.files.load(Relaxed), "blob"),
            plural(stats.walk.listed.load(Relaxed), "commit")
        ),
    };
    let mut line = format!(
        "keywarden: {} in {}; scanned {scanned} ({}) in {:.2}s",
        plural(result.findings.len() as u64, "finding"),
        plural(files.len() as u64, "file"),
        bytesize::ByteSize(stats.bytes.load(Relaxed))
            .display()
            .iec(),
        elapsed.as_secs_f64(),
    );
    if s.inline + s.allowlist + s.baseline > 0 {
        line.push_str(&format!(
            "; not reported: {} inline-allowed, {} allowlisted, {} in baseline",
            s.inline, s.allowlist, s.baseline
        ));
    }
    let warnings = stats.warnings.load(Relaxed);
    if warnings > 0 {
        line.push_str(&format!(
            "; {warnings} warning{}",
            if warnings == 1 { "" } else { "s" }
        ));
    }
    line
}
