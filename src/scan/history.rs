//! Scanning git history: each distinct blob is read and matched once, in
//! parallel, then its findings are attributed to the commits and paths
//! where the blob appears.

use super::finding::fingerprint;
use super::{Finding, Phase, ScanResult, ScanStats, Scanner, finish};
use crate::sources::archive::{Expander, kind_of};
use crate::sources::git::{self, BlobSite, GitError};
use crate::sources::{Origin, Position, Sink, SourceWarning, Unit, looks_binary};
use git2::{Oid, Repository};
use rayon::prelude::*;
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
        let repo = git::open(repo_path)?;
        let git_dir = repo.path().to_path_buf();
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
                let found = self.scan_sites(&git_dir, &sites, opts, stats, on_warning);
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
                let found = self.scan_sites(&git_dir, &sites, opts, stats, on_warning);
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
        git_dir: &Path,
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
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(opts.threads)
            .build()
            .expect("a thread pool with default settings builds");
        pool.install(|| {
            distinct.par_iter().for_each_init(
                || (Repository::open(git_dir), sink.new_worker()),
                |(repo, worker), site| match repo {
                    Ok(repo) => scan_blob(
                        repo,
                        site,
                        opts.max_file_size,
                        archives.as_deref(),
                        &sink,
                        worker,
                    ),
                    // Never skip a blob silently.
                    Err(e) => sink.warning(SourceWarning::Walk(format!(
                        "blob {} ({}): not scanned: cannot open the repository: {}",
                        site.blob,
                        site.path,
                        e.message()
                    ))),
                },
            );
        });
        let scanned = finish(collector);
        let mut by_blob: HashMap<String, Vec<Finding>> = HashMap::new();
        for f in scanned.findings {
            by_blob
                .entry(f.blob.clone().unwrap_or_default())
                .or_default()
                .push(f);
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
        repo: &Repository,
        findings: Vec<Finding>,
    ) -> Result<Vec<Finding>, GitError> {
        let wanted: HashSet<Oid> = findings
            .iter()
            .filter_map(|f| f.blob.as_deref().and_then(|b| Oid::from_str(b).ok()))
            .collect();
        let mut by_blob: HashMap<Oid, Vec<&Finding>> = HashMap::new();
        for f in &findings {
            if let Some(oid) = f.blob.as_deref().and_then(|b| Oid::from_str(b).ok()) {
                by_blob.entry(oid).or_default().push(f);
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
    by_blob: HashMap<String, Vec<Finding>>,
    suppressed: super::Suppressed,
}

impl BlobFindings {
    fn findings_of(&self, blob: Oid) -> Option<&Vec<Finding>> {
        self.by_blob.get(&blob.to_string())
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
fn drop_moved(repo: &Repository, findings: Vec<Finding>) -> Vec<Finding> {
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
                    earlier.commit.is_some() && !path_exists_at(repo, &c.id, &earlier.path)
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

fn path_exists_at(repo: &Repository, commit: &str, path: &str) -> bool {
    Oid::from_str(commit)
        .and_then(|oid| repo.find_commit(oid))
        .and_then(|c| c.tree())
        .is_ok_and(|t| t.get_path(Path::new(path)).is_ok())
}

/// Reads one blob and feeds it to `sink` as the file at `site`; a blob
/// that cannot be read, or is above `max_size`, is a warning.
pub(super) fn scan_blob<S: Sink>(
    repo: &Repository,
    site: &BlobSite,
    max_size: u64,
    archives: Option<&Expander>,
    sink: &S,
    worker: &mut S::Worker,
) {
    let blob = match repo.find_blob(site.blob) {
        Ok(b) => b,
        Err(e) => {
            sink.warning(SourceWarning::Walk(format!(
                "blob {} ({}): cannot read: {}",
                site.blob,
                site.path,
                e.message()
            )));
            return;
        }
    };
    let data = blob.content();
    if data.len() as u64 > max_size {
        sink.warning(SourceWarning::TooLarge {
            path: format!("{} (blob {})", site.path, site.blob),
            size: data.len() as u64,
            limit: max_size,
        });
        return;
    }
    let origin = Origin::Blob {
        path: site.path.clone(),
        commit: site.commit.clone(),
        blob: site.blob.to_string(),
    };
    if let Some(archives) = archives
        && kind_of(&data[..data.len().min(512)]).is_some()
    {
        // Reading from memory cannot fail.
        let _ = archives.expand_seekable(&origin, std::io::Cursor::new(data), sink, worker);
        return;
    }
    sink.unit(
        worker,
        &Unit {
            origin: &origin,
            data,
            keep: 0..data.len(),
            start: Position::START,
            binary: looks_binary(data),
            decoded: None,
        },
    );
    sink.input_done(worker, data.len() as u64);
}
