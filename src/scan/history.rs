//! Scanning git history: the git source lists which blobs history holds
//! and where, and reads each distinct blob once, in parallel, into the
//! same sink as files (archives and decoding included); the findings of a
//! blob are then joined to the commits and paths the listing has for it.

use super::finding::fingerprint;
use super::{Finding, Phase, ScanResult, ScanStats, Scanner, finish};
use crate::sources::git::{self, BlobSite, GitError, ReadOptions, Repo};
use crate::sources::{BlobId, SourceWarning};
use std::collections::{HashMap, HashSet};
use std::path::Path;

use std::sync::atomic::Ordering::Relaxed;

/// What part of history to scan and how to report it.
#[derive(Debug, Clone, Default)]
pub struct HistoryOptions {
    /// `BASE..HEAD`, or `REV` for `REV..HEAD`: only secrets those commits
    /// added. None: all of history.
    pub range: Option<String>,
    /// Report every commit and path that carries a secret, not only the
    /// first.
    pub all_occurrences: bool,
    /// Also scan blobs no ref reaches.
    pub all_objects: bool,
    /// Worker threads; 0 picks one per core.
    pub threads: usize,
    /// Blobs larger than this are skipped with a warning.
    pub max_file_size: u64,
}

/// A history scan's findings and what the walk noted.
#[derive(Debug, Default)]
pub struct HistoryResult {
    pub result: ScanResult,
    pub notes: Vec<String>,
    /// The range, when it selected no commit at all.
    pub empty_range: Option<String>,
}

type Key = (String, Vec<u8>, String);

impl Scanner {
    /// Scans the repository at `repo_path` as `opts` says.
    pub fn scan_history(
        &self,
        repo_path: &Path,
        opts: &HistoryOptions,
        stats: &ScanStats,
        on_warning: &(dyn Fn(SourceWarning) + Sync),
    ) -> Result<HistoryResult, GitError> {
        let repo = Repo::open(repo_path)?;
        let mut notes = Vec::new();
        if repo.is_shallow() {
            notes.push("shallow clone: only the commits present were scanned".to_string());
        }
        let suppressed;
        let mut empty_range = None;
        let result = match &opts.range {
            None => {
                stats.set_phase(Phase::Walking);
                let history = git::enumerate_history(&repo, &stats.walk)?;
                notes.extend(history.notes.iter().cloned());
                for broken in &history.broken {
                    stats.warnings.fetch_add(1, Relaxed);
                    on_warning(SourceWarning::Walk(broken.clone()));
                }
                let mut sites = history.sites;
                if opts.all_objects {
                    let extra = git::unreachable_blobs(
                        &repo,
                        &git::History {
                            sites: sites.clone(),
                            ..Default::default()
                        },
                    )?;
                    sites.extend(extra);
                }
                let found = self.scan_sites(&repo, &sites, opts, stats, on_warning);
                suppressed = found.suppressed;
                let mut findings = self.attribute_to_sites(found, &sites);
                if opts.all_occurrences {
                    findings = self.expand_occurrences(&repo, findings)?;
                } else {
                    findings = drop_moved(&repo, earliest_per_path(findings));
                }
                findings
            }
            Some(range) => {
                stats.set_phase(Phase::Walking);
                let walked = git::enumerate_range(&repo, range, &stats.walk)?;
                if walked.commits == 0 {
                    empty_range = Some(range.clone());
                }
                let changes = walked.changes;
                let mut sites: Vec<BlobSite> = changes.iter().map(|c| c.site.clone()).collect();
                for c in &changes {
                    for p in c.parents.iter().flatten() {
                        sites.push(BlobSite {
                            blob: *p,
                            commit: None,
                            path: c.site.path.clone(),
                        });
                    }
                }
                let found = self.scan_sites(&repo, &sites, opts, stats, on_warning);
                suppressed = found.suppressed;
                let mut findings = Vec::new();
                for change in &changes {
                    let Some(new) = found.findings_of(change.site.blob) else {
                        continue;
                    };
                    let old: HashSet<(&str, &[u8])> = change
                        .parents
                        .iter()
                        .flatten()
                        .filter_map(|p| found.findings_of(*p))
                        .flatten()
                        .map(|f| (f.rule_id.as_str(), f.secret.expose()))
                        .collect();
                    for f in new {
                        if !old.contains(&(f.rule_id.as_str(), f.secret.expose())) {
                            findings.extend(self.place(f, &change.site));
                        }
                    }
                }
                if opts.all_occurrences {
                    findings
                } else {
                    earliest_per_path(findings)
                }
            }
        };
        let mut result = ScanResult {
            findings: result,
            suppressed,
        };
        super::sort_findings(&mut result.findings);
        Ok(HistoryResult {
            result,
            notes,
            empty_range,
        })
    }

    /// Reads and matches each distinct blob of `sites` once, in parallel.
    fn scan_sites(
        &self,
        repo: &Repo,
        sites: &[BlobSite],
        opts: &HistoryOptions,
        stats: &ScanStats,
        on_warning: &(dyn Fn(SourceWarning) + Sync),
    ) -> BlobFindings {
        let mut seen = HashSet::new();
        let distinct: Vec<&BlobSite> = sites.iter().filter(|s| seen.insert(s.blob)).collect();
        stats.blobs_total.store(distinct.len() as u64, Relaxed);
        stats.set_phase(Phase::Blobs);
        let collector = self.collector(stats, on_warning);
        let sink = self.decoding(&collector);
        let archives = self.expander();
        let read = ReadOptions {
            threads: opts.threads,
            max_size: opts.max_file_size,
            archives: archives.as_deref(),
        };
        git::read_blobs(repo, &distinct, &read, &sink);
        let scanned = finish(collector);
        let mut by_blob: HashMap<BlobId, Vec<Finding>> = HashMap::new();
        for f in scanned.findings {
            if let Some(blob) = f.blob {
                by_blob.entry(blob).or_default().push(f);
            }
        }
        BlobFindings {
            by_blob,
            suppressed: scanned.suppressed,
        }
    }

    /// A blob's finding placed at another site (path and commit), unless
    /// that path is allowlisted.
    fn place(&self, f: &Finding, site: &BlobSite) -> Option<Finding> {
        let rule = self.matcher.rules().iter().find(|r| r.id == f.rule_id)?;
        if rule.allowlist.allows_path(&site.path) || self.allowlist.allows_path(&site.path) {
            return None;
        }
        // A member of an archive blob keeps its member path.
        let path = match &f.member {
            Some(member) => format!("{}!{member}", site.path),
            None => site.path.clone(),
        };
        Some(Finding {
            fingerprint: fingerprint(&f.rule_id, &path, &f.secret),
            path,
            commit: site.commit.clone(),
            ..f.clone()
        })
    }

    /// Each blob's findings at every site listed for that blob.
    fn attribute_to_sites(&self, found: BlobFindings, sites: &[BlobSite]) -> Vec<Finding> {
        sites
            .iter()
            .filter_map(|s| found.findings_of(s.blob).map(|fs| (s, fs)))
            .flat_map(|(s, fs)| fs.iter().filter_map(|f| self.place(f, s)))
            .collect()
    }

    /// Every commit and path carrying each matched blob, from a full walk
    /// that skips trees known to hold none of them.
    fn expand_occurrences(
        &self,
        repo: &Repo,
        findings: Vec<Finding>,
    ) -> Result<Vec<Finding>, GitError> {
        let wanted: HashSet<BlobId> = findings.iter().filter_map(|f| f.blob).collect();
        let mut by_blob: HashMap<BlobId, Vec<&Finding>> = HashMap::new();
        for f in &findings {
            if let Some(blob) = f.blob {
                by_blob.entry(blob).or_default().push(f);
            }
        }
        let sites = git::all_sites_of(repo, &wanted)?;
        let mut out: Vec<Finding> = findings
            .iter()
            .filter(|f| f.commit.is_none())
            .cloned()
            .collect();
        for site in &sites {
            for f in by_blob.get(&site.blob).into_iter().flatten() {
                out.extend(self.place(f, site));
            }
        }
        let mut seen = HashSet::new();
        out.retain(|f| {
            seen.insert((
                f.commit.as_ref().map(|c| c.id.clone()),
                f.path.clone(),
                f.rule_id.clone(),
                f.line,
                f.column,
            ))
        });
        Ok(out)
    }
}

/// Findings of each scanned blob, by blob id, and what was suppressed.
struct BlobFindings {
    by_blob: HashMap<BlobId, Vec<Finding>>,
    suppressed: super::Suppressed,
}

impl BlobFindings {
    fn findings_of(&self, blob: BlobId) -> Option<&Vec<Finding>> {
        self.by_blob.get(&blob)
    }
}

/// One finding per (rule, secret, path): the earliest commit's.
fn earliest_per_path(findings: Vec<Finding>) -> Vec<Finding> {
    let mut best: HashMap<Key, Finding> = HashMap::new();
    for f in findings {
        let key = (
            f.rule_id.clone(),
            f.secret.expose().to_vec(),
            f.path.clone(),
        );
        let order = |f: &Finding| f.commit.as_ref().map_or(u32::MAX, |c| c.order);
        match best.get(&key) {
            Some(b) if (order(b), b.line, b.column) <= (order(&f), f.line, f.column) => {}
            _ => {
                best.insert(key, f);
            }
        }
    }
    best.into_values().collect()
}

/// Drops a secret's finding at a new path when the path it was first
/// found at no longer exists in that commit: the file was renamed or moved
/// (and perhaps edited), which is not a new leak.
fn drop_moved(repo: &Repo, findings: Vec<Finding>) -> Vec<Finding> {
    let order = |f: &Finding| f.commit.as_ref().map_or(u32::MAX, |c| c.order);
    let mut groups: HashMap<(String, Vec<u8>), Vec<Finding>> = HashMap::new();
    for f in findings {
        groups
            .entry((f.rule_id.clone(), f.secret.expose().to_vec()))
            .or_default()
            .push(f);
    }
    let mut out = Vec::new();
    for (_, mut group) in groups {
        group.sort_by_key(|f| order(f));
        let mut kept: Vec<Finding> = Vec::new();
        for f in group {
            let moved = f.commit.as_ref().is_some_and(|c| {
                kept.iter().any(|earlier| {
                    earlier.commit.is_some() && !repo.path_exists_at(&c.id, &earlier.path)
                })
            });
            if !moved {
                kept.push(f);
            }
        }
        out.extend(kept);
    }
    out
}
