//! Scanning: runs sources through the matcher in parallel and turns
//! matches into findings — placed by line and column, fingerprinted, and
//! filtered by allowlists, inline `keywarden:allow` comments and baselines.
//!
//! Scan decides what is a finding; it never prints or formats (see
//! `report`) and never reads input itself (see `sources`).

mod baseline;
mod collect;
mod finding;
mod history;
mod staged;

pub use history::HistoryOptions;

pub use baseline::{Baseline, BaselineError, IGNORE_FILE_NAME};
pub use finding::{Finding, Liveness, fingerprint, sort_findings};

use crate::matcher::{Matcher, MatcherError};
use crate::rules::{Allowlist, RuleSet};
use crate::sources::archive::{ArchiveLimits, Expander};
use crate::sources::decode::{DEFAULT_DEPTH, Decoder, Decoding};
use crate::sources::{self, SourceWarning, fs::WalkOptions};
use collect::Collector;
use std::io::Read;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU8, AtomicU64};

/// Counters a progress display can read while a scan runs.
#[derive(Debug, Default)]
pub struct ScanStats {
    pub files: AtomicU64,
    pub bytes: AtomicU64,
    pub findings: AtomicU64,
    pub warnings: AtomicU64,
    /// History scans: commits listed and walked.
    pub walk: sources::git::WalkCounters,
    /// History scans: what is being done ([`Phase`] as a number).
    pub phase: AtomicU8,
    /// History scans: the distinct blobs to read, once the walk is done.
    pub blobs_total: AtomicU64,
}

/// What a history scan is doing, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Files (a directory scan), or not started.
    Files = 0,
    /// Listing commits and walking their trees.
    Walking = 1,
    /// Reading and matching the blobs the walk found.
    Blobs = 2,
}

impl ScanStats {
    pub fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Relaxed);
    }

    pub fn phase(&self) -> Phase {
        match self.phase.load(Relaxed) {
            1 => Phase::Walking,
            2 => Phase::Blobs,
            _ => Phase::Files,
        }
    }
}

/// How many matches were not reported, and why.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Suppressed {
    pub allowlist: u64,
    pub inline: u64,
    pub baseline: u64,
}

impl Suppressed {
    fn add(&mut self, other: Suppressed) {
        self.allowlist += other.allowlist;
        self.inline += other.inline;
        self.baseline += other.baseline;
    }
}

/// What a scan found, sorted by path and position.
#[derive(Debug, Default)]
pub struct ScanResult {
    pub findings: Vec<Finding>,
    pub suppressed: Suppressed,
}

/// The compiled rules and global allowlist, ready to scan any source.
#[derive(Debug, Clone)]
pub struct Scanner {
    matcher: Matcher,
    allowlist: Allowlist,
    decoder: Decoder,
    archives: Option<ArchiveLimits>,
}

impl Scanner {
    /// Compiles `rules` for scanning, decoding encoded spans to the
    /// default depth.
    pub fn new(rules: &RuleSet) -> Result<Self, MatcherError> {
        Ok(Scanner {
            matcher: Matcher::new(&rules.rules)?,
            allowlist: rules.allowlist.clone(),
            decoder: decoder_for(rules, DEFAULT_DEPTH),
            archives: Some(ArchiveLimits::default()),
        })
    }

    /// Opens archives within these limits; `None`: scans them as they are.
    pub fn with_archives(mut self, limits: Option<ArchiveLimits>) -> Self {
        self.archives = limits;
        self
    }

    /// A fresh expander for one scan (it counts the scan's expanded bytes).
    fn expander(&self) -> Option<Arc<Expander>> {
        self.archives
            .clone()
            .map(|limits| Arc::new(Expander::new(limits, self.matcher.overlap())))
    }

    /// Decodes nested encodings down to `depth` (0: not at all).
    pub fn with_decode_depth(mut self, depth: usize, rules: &RuleSet) -> Self {
        self.decoder = decoder_for(rules, depth);
        self
    }

    /// The compiled matcher.
    pub fn matcher(&self) -> &Matcher {
        &self.matcher
    }

    /// Walks directories (and files) in parallel. `walk.overlap` is set
    /// from the rules.
    pub fn scan_paths(
        &self,
        walk: &WalkOptions,
        stats: &ScanStats,
        on_warning: &(dyn Fn(SourceWarning) + Sync),
    ) -> ScanResult {
        let collector = self.collector(stats, on_warning);
        let walk = WalkOptions {
            overlap: self.matcher.overlap(),
            archives: self.expander(),
            ..walk.clone()
        };
        let skip = |path: &str| self.allowlist.allows_path(path);
        sources::fs::walk(&walk, &skip, &self.decoding(&collector));
        finish(collector)
    }

    /// Scans one stream (stdin) named `name` in reports.
    pub fn scan_reader(
        &self,
        reader: impl Read,
        name: &str,
        stats: &ScanStats,
        on_warning: &(dyn Fn(SourceWarning) + Sync),
    ) -> std::io::Result<ScanResult> {
        let collector = self.collector(stats, on_warning);
        sources::stdin::scan_reader(
            reader,
            name,
            self.matcher.overlap(),
            &self.decoding(&collector),
        )?;
        Ok(finish(collector))
    }

    /// `sink`, also fed what encoded spans decode to.
    fn decoding<'a, S: sources::Sink>(&'a self, sink: &'a S) -> Decoding<'a, S> {
        Decoding {
            inner: sink,
            decoder: &self.decoder,
        }
    }

    fn collector<'a>(
        &'a self,
        stats: &'a ScanStats,
        on_warning: &'a (dyn Fn(SourceWarning) + Sync),
    ) -> Collector<'a> {
        Collector {
            matcher: &self.matcher,
            allowlist: &self.allowlist,
            stats,
            on_warning,
            findings: Mutex::default(),
            suppressed: Mutex::default(),
        }
    }
}

/// The decoder of every rule's keywords.
fn decoder_for(rules: &RuleSet, depth: usize) -> Decoder {
    let keywords: Vec<&str> = rules
        .rules
        .iter()
        .flat_map(|r| r.keywords.iter().map(String::as_str))
        .collect();
    Decoder::new(&keywords, depth)
}

fn finish(collector: Collector<'_>) -> ScanResult {
    let mut findings = collector
        .findings
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());
    sort_findings(&mut findings);
    ScanResult {
        findings,
        suppressed: collector
            .suppressed
            .into_inner()
            .unwrap_or_else(|e| e.into_inner()),
    }
}

impl ScanResult {
    /// Drops findings the baseline already knows.
    pub fn apply_baseline(&mut self, baseline: &Baseline) {
        self.suppressed.baseline += baseline.suppress(&mut self.findings) as u64;
    }
}
