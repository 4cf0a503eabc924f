//! Git repositories as a source: which blobs history holds and where each
//! first appeared, which blobs a commit range changed, and blob contents.
//!
//! Enumeration (which blobs, where) and reading are separate; neither
//! matches. History is walked oldest-first, each tree once, so the cost
//! grows with the number of distinct objects, not commits × files.

use super::archive::{Expander, kind_of};
use super::{BlobId, Origin, Position, Sink, SourceWarning, Unit, looks_binary};
use crate::provenance::CommitInfo;
use git2::{ObjectType, Oid, Repository, Sort};
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use thiserror::Error;

/// Errors reading a repository.
#[derive(Debug, Error)]
pub enum GitError {
    #[error("{path}: not a git repository: {message}")]
    Open { path: String, message: String },
    /// libgit2's message only: its class and code mean nothing to a user.
    #[error("{context}: {message}")]
    Git { context: String, message: String },
    #[error(
        "--range {0:?} is one revision, not a range: give BASE..HEAD (the commits after BASE up to HEAD) or A...B (the commits on either side since they parted); for the commits after REV up to HEAD use --since REV"
    )]
    NotARange(String),
    #[error("{rev:?} names no commit here ({message})")]
    Revision { rev: String, message: String },
}

fn git_err(context: impl Into<String>) -> impl FnOnce(git2::Error) -> GitError {
    let context = context.into();
    move |e| GitError::Git {
        context,
        message: e.message().to_string(),
    }
}

/// What a range selects, once walked.
pub struct RangeWalk {
    pub changes: Vec<Change>,
    /// Commits in the range (including those that change no file).
    pub commits: usize,
}

/// Pushes the commits `range` selects onto `walk`, as git reads it:
/// `A..B` (in B, not in A), `A...B` (in either, not in both: since their
/// merge bases); a side left empty is HEAD.
fn push_range(
    repo: &Repository,
    walk: &mut git2::Revwalk<'_>,
    range: &str,
) -> Result<(), GitError> {
    let commit = |spec: &str| -> Result<Oid, GitError> {
        let spec = if spec.is_empty() { "HEAD" } else { spec };
        repo.revparse_single(spec)
            .and_then(|o| o.peel_to_commit())
            .map(|c| c.id())
            .map_err(|e| GitError::Revision {
                rev: spec.to_string(),
                message: e.message().to_string(),
            })
    };
    let walk_err = git_err(format!("range {range}"));
    if let Some((a, b)) = range.split_once("...") {
        let (a, b) = (commit(a)?, commit(b)?);
        walk.push(a).and_then(|_| walk.push(b)).map_err(walk_err)?;
        // Unrelated histories have no merge base: everything on both sides.
        if let Ok(bases) = repo.merge_bases(a, b) {
            for base in bases.iter() {
                walk.hide(*base)
                    .map_err(git_err(format!("range {range}")))?;
            }
        }
    } else if let Some((a, b)) = range.split_once("..") {
        let (a, b) = (commit(a)?, commit(b)?);
        walk.push(b).and_then(|_| walk.hide(a)).map_err(walk_err)?;
    } else {
        return Err(GitError::NotARange(range.to_string()));
    }
    Ok(())
}

/// A commit's provenance as findings carry it.
fn commit_info(c: &git2::Commit<'_>, order: u32) -> CommitInfo {
    let author = c.author();
    CommitInfo {
        id: c.id().to_string(),
        author_name: String::from_utf8_lossy(author.name_bytes()).into_owned(),
        author_email: String::from_utf8_lossy(author.email_bytes()).into_owned(),
        time: author.when().seconds(),
        offset_minutes: author.when().offset_minutes(),
        summary: String::from_utf8_lossy(c.summary_bytes().unwrap_or_default()).into_owned(),
        order,
    }
}

/// A blob at a path in a commit (no commit: a blob no ref reaches).
#[derive(Debug, Clone)]
pub struct BlobSite {
    pub blob: BlobId,
    pub commit: Option<Arc<CommitInfo>>,
    pub path: String,
}

/// How far a history walk is, for a progress display: commits listed by
/// the revision walk, then commits whose trees have been walked.
#[derive(Debug, Default)]
pub struct WalkCounters {
    pub listed: AtomicU64,
    pub walked: AtomicU64,
}

/// What a history walk found.
#[derive(Debug, Default)]
pub struct History {
    /// Each distinct blob at the place it first appeared (several places
    /// when the first commit holding it has it at several paths).
    pub sites: Vec<BlobSite>,
    pub commits: usize,
    /// Things skipped, for the user (submodules, non-commit refs).
    pub notes: Vec<String>,
    /// Refs whose objects cannot be read (corrupt or missing): warnings.
    pub broken: Vec<String>,
}

/// A repository opened for scanning: what the scan asks of git goes
/// through here, so that the scan itself never touches libgit2.
pub struct Repo(Repository);

impl Repo {
    /// The repository (bare or not) at or above `path`.
    pub fn open(path: &Path) -> Result<Repo, GitError> {
        open(path).map(Repo)
    }

    /// Whether it is a shallow clone (history cut short).
    pub fn is_shallow(&self) -> bool {
        self.0.is_shallow()
    }

    /// Whether commit `commit` (a full hex id) has a file at `path`.
    pub fn path_exists_at(&self, commit: &str, path: &str) -> bool {
        Oid::from_str(commit)
            .and_then(|oid| self.0.find_commit(oid))
            .and_then(|c| c.tree())
            .is_ok_and(|t| t.get_path(Path::new(path)).is_ok())
    }
}

fn blob_id(oid: Oid) -> BlobId {
    let mut id = [0; 20];
    id.copy_from_slice(&oid.as_bytes()[..20]);
    BlobId(id)
}

fn oid_of(id: BlobId) -> Oid {
    Oid::from_bytes(&id.0).expect("20 bytes are an object id")
}

/// Opens a repository (bare or not) at or above `path`.
pub fn open(path: &Path) -> Result<Repository, GitError> {
    Repository::open_ext(
        path,
        git2::RepositoryOpenFlags::empty(),
        std::iter::empty::<&str>(),
    )
    .map_err(|e| GitError::Open {
        path: path.display().to_string(),
        message: e.message().to_string(),
    })
}

/// The root of the git work tree that holds `path` (a directory), as a
/// canonical path; `None` outside a work tree (or in a bare repository).
pub fn work_tree_root(path: &Path) -> Option<std::path::PathBuf> {
    let repo = open(path).ok()?;
    repo.workdir()?.canonicalize().ok()
}

/// The file at `path` (from the root) in commit `rev` of the repository
/// holding `repo_path`: `None` when that commit has no such file.
pub fn file_at(repo_path: &Path, rev: &str, path: &str) -> Result<Option<Vec<u8>>, GitError> {
    let repo = open(repo_path)?;
    let commit = repo
        .revparse_single(rev)
        .and_then(|o| o.peel_to_commit())
        .map_err(|e| GitError::Revision {
            rev: rev.to_string(),
            message: e.message().to_string(),
        })?;
    let tree = commit
        .tree()
        .map_err(git_err(format!("reading tree of {rev}")))?;
    let Ok(entry) = tree.get_path(Path::new(path)) else {
        return Ok(None);
    };
    let blob = repo
        .find_blob(entry.id())
        .map_err(git_err(format!("reading {rev}:{path}")))?;
    Ok(Some(blob.content().to_vec()))
}

/// Commits reachable from every ref (branches, tags, remotes, stash) and
/// HEAD, parents before children.
fn all_commits(
    repo: &Repository,
    notes: &mut Vec<String>,
    broken: &mut Vec<String>,
    listed: &AtomicU64,
) -> Result<Vec<Oid>, GitError> {
    let mut walk = repo.revwalk().map_err(git_err("revwalk"))?;
    walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)
        .map_err(git_err("revwalk"))?;
    let mut tips = Vec::new();
    for r in repo.references().map_err(git_err("listing refs"))? {
        let r = r.map_err(git_err("reading a ref"))?;
        let name = String::from_utf8_lossy(r.name_bytes()).into_owned();
        match r.peel_to_commit() {
            Ok(c) => {
                walk.push(c.id())
                    .map_err(git_err(format!("walking {name}")))?;
                tips.push(c.id());
            }
            Err(e) => {
                // A ref to a tree or blob is legitimate; one whose object
                // cannot be read is damage the user must hear about.
                let target = r.resolve().ok().and_then(|r| r.target());
                match target {
                    Some(oid) if repo.find_object(oid, None).is_err() => broken.push(format!(
                        "{name}: cannot read object {oid}: {}; skipped",
                        e.message()
                    )),
                    _ => notes.push(format!("{name}: does not point to a commit; skipped")),
                }
            }
        }
    }
    if let Ok(head) = repo.head().and_then(|h| h.peel_to_commit()) {
        walk.push(head.id()).map_err(git_err("walking HEAD"))?;
        tips.push(head.id());
    }
    if tips.is_empty() {
        return Ok(Vec::new());
    }
    let mut commits = Vec::new();
    for oid in walk {
        match oid {
            Ok(oid) => {
                commits.push(oid);
                listed.fetch_add(1, Relaxed);
            }
            // A commit that cannot be read stops libgit2's walk: walk
            // again, skipping what is broken, so the rest is still scanned.
            Err(_) => {
                let commits = tolerant_walk(repo, &tips, broken);
                listed.store(commits.len() as u64, Relaxed);
                return Ok(commits);
            }
        }
    }
    Ok(commits)
}

/// Every readable commit reachable from `tips`, parents before children;
/// each unreadable commit is listed in `broken` with its history skipped.
fn tolerant_walk(repo: &Repository, tips: &[Oid], broken: &mut Vec<String>) -> Vec<Oid> {
    let mut parents: HashMap<Oid, Vec<Oid>> = HashMap::new();
    let mut unreadable: HashSet<Oid> = HashSet::new();
    let mut stack = tips.to_vec();
    while let Some(oid) = stack.pop() {
        if parents.contains_key(&oid) || unreadable.contains(&oid) {
            continue;
        }
        match repo.find_commit(oid) {
            Ok(c) => {
                let ids: Vec<Oid> = c.parent_ids().collect();
                stack.extend(ids.iter().copied());
                parents.insert(oid, ids);
            }
            Err(e) => {
                broken.push(format!(
                    "cannot read commit {oid}: {}; it and its ancestors only it reaches were skipped",
                    e.message()
                ));
                unreadable.insert(oid);
            }
        }
    }
    // Kahn's algorithm over the readable commits: parents first.
    let mut waiting: HashMap<Oid, usize> = HashMap::new();
    let mut children: HashMap<Oid, Vec<Oid>> = HashMap::new();
    for (child, ps) in &parents {
        let known: Vec<&Oid> = ps.iter().filter(|p| parents.contains_key(p)).collect();
        waiting.insert(*child, known.len());
        for p in known {
            children.entry(*p).or_default().push(*child);
        }
    }
    let mut ready: Vec<Oid> = waiting
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(oid, _)| *oid)
        .collect();
    ready.sort();
    let mut order = Vec::with_capacity(parents.len());
    while let Some(oid) = ready.pop() {
        order.push(oid);
        for child in children.get(&oid).into_iter().flatten() {
            if let Some(n) = waiting.get_mut(child) {
                *n -= 1;
                if *n == 0 {
                    ready.push(*child);
                }
            }
        }
    }
    order
}

/// Walks all of history oldest-first and lists each distinct blob where it
/// first appeared. Trees already visited are not entered again.
pub fn enumerate_history(repo: &Repo, counters: &WalkCounters) -> Result<History, GitError> {
    let repo = &repo.0;
    let mut history = History::default();
    let commits = all_commits(
        repo,
        &mut history.notes,
        &mut history.broken,
        &counters.listed,
    )?;
    history.commits = commits.len();
    let mut seen_trees: HashSet<Oid> = HashSet::new();
    let mut first_commit_of_blob: HashMap<Oid, u32> = HashMap::new();
    let mut gitlinks = Gitlinks::default();
    for (order, oid) in commits.iter().enumerate() {
        counters.walked.fetch_add(1, Relaxed);
        let order = order as u32;
        let commit = repo
            .find_commit(*oid)
            .map_err(git_err(format!("reading commit {oid}")))?;
        let tree_id = commit.tree_id();
        if !seen_trees.insert(tree_id) {
            gitlinks.commits += usize::from(gitlinks.trees.contains(&tree_id));
            continue;
        }
        let info = Arc::new(commit_info(&commit, order));
        // The trees this commit walks, each with the index of its parent:
        // a gitlink found below marks every tree up to the root.
        let mut walked: Vec<(Oid, Option<usize>)> = Vec::new();
        let mut stack = vec![(tree_id, String::new(), None)];
        while let Some((tree_id, prefix, parent)) = stack.pop() {
            let tree = repo
                .find_tree(tree_id)
                .map_err(git_err(format!("reading tree {tree_id}")))?;
            let here = walked.len();
            walked.push((tree_id, parent));
            for entry in tree.iter() {
                // Most entries are trees and blobs already seen: a path is
                // made only for what is kept.
                let path = || {
                    let name = String::from_utf8_lossy(entry.name_bytes());
                    if prefix.is_empty() {
                        name.into_owned()
                    } else {
                        format!("{prefix}/{name}")
                    }
                };
                match entry.kind() {
                    // A tree already walked holds only blobs already listed.
                    Some(ObjectType::Tree) if seen_trees.insert(entry.id()) => {
                        stack.push((entry.id(), path(), Some(here)));
                    }
                    Some(ObjectType::Tree) if gitlinks.trees.contains(&entry.id()) => {
                        gitlinks.mark(&walked, here);
                    }
                    Some(ObjectType::Blob) => {
                        let first = *first_commit_of_blob.entry(entry.id()).or_insert(order);
                        if first == order {
                            history.sites.push(BlobSite {
                                blob: blob_id(entry.id()),
                                commit: Some(info.clone()),
                                path: path(),
                            });
                        }
                    }
                    // A gitlink: a submodule's commit, not in this repository.
                    Some(ObjectType::Commit) => {
                        gitlinks.paths.insert(path());
                        gitlinks.mark(&walked, here);
                    }
                    _ => {}
                }
            }
        }
        gitlinks.commits += usize::from(gitlinks.trees.contains(&tree_id));
    }
    if let Some(note) = gitlinks.note() {
        history.notes.push(note);
    }
    Ok(history)
}

/// Submodule entries (gitlinks) met by the history walk.
#[derive(Default)]
struct Gitlinks {
    /// Where in the work tree they are.
    paths: std::collections::BTreeSet<String>,
    /// Commits whose tree holds one.
    commits: usize,
    /// Trees with a gitlink somewhere below.
    trees: HashSet<Oid>,
}

impl Gitlinks {
    /// Marks tree `at` of `walked` and its parents up to the root.
    fn mark(&mut self, walked: &[(Oid, Option<usize>)], at: usize) {
        let mut at = Some(at);
        while let Some(i) = at {
            let (tree, parent) = walked[i];
            if !self.trees.insert(tree) {
                break; // marked already, and so are its parents
            }
            at = parent;
        }
    }

    fn note(&self) -> Option<String> {
        if self.paths.is_empty() {
            return None;
        }
        let plural =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let shown: Vec<String> = self
            .paths
            .iter()
            .take(3)
            .map(|p| crate::untrusted::one_line(p, 80))
            .collect();
        let more = if self.paths.len() > 3 { ", …" } else { "" };
        Some(format!(
            "submodules not scanned: {} ({}{more}), in {}; scan each submodule's own repository",
            plural(self.paths.len(), "path", "paths"),
            shown.join(", "),
            plural(self.commits, "commit", "commits"),
        ))
    }
}

/// Every blob in the object database that the history walk did not list
/// (dangling or unreachable blobs), as sites without a commit.
pub fn unreachable_blobs(repo: &Repo, history: &History) -> Result<Vec<BlobSite>, GitError> {
    let repo = &repo.0;
    let known: HashSet<BlobId> = history.sites.iter().map(|s| s.blob).collect();
    let odb = repo.odb().map_err(git_err("opening the object database"))?;
    let mut all = Vec::new();
    odb.foreach(|oid| {
        all.push(*oid);
        true
    })
    .map_err(git_err("listing objects"))?;
    let mut out = Vec::new();
    for oid in all {
        if known.contains(&blob_id(oid)) {
            continue;
        }
        if let Ok((_, ObjectType::Blob)) = odb.read_header(oid) {
            out.push(BlobSite {
                blob: blob_id(oid),
                commit: None,
                path: format!("(unreachable blob {oid})"),
            });
        }
    }
    Ok(out)
}

/// A path a commit changed: its new blob and the blob at that path in
/// each parent (None where the parent lacks it).
#[derive(Debug, Clone)]
pub struct Change {
    pub site: BlobSite,
    pub parents: Vec<Option<BlobId>>,
}

/// Commits in `range` (`BASE..HEAD` or `A...B`) and the paths each
/// changed, oldest first.
pub fn enumerate_range(
    repo: &Repo,
    range: &str,
    counters: &WalkCounters,
) -> Result<RangeWalk, GitError> {
    let repo = &repo.0;
    let mut walk = repo.revwalk().map_err(git_err("revwalk"))?;
    walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)
        .map_err(git_err("revwalk"))?;
    push_range(repo, &mut walk, range)?;
    let mut changes = Vec::new();
    let mut commits = 0;
    for (order, oid) in walk.enumerate() {
        commits += 1;
        counters.listed.fetch_add(1, Relaxed);
        counters.walked.fetch_add(1, Relaxed);
        let oid = oid.map_err(git_err(format!("walking {range}")))?;
        let commit = repo
            .find_commit(oid)
            .map_err(git_err(format!("reading commit {oid}")))?;
        let tree = commit
            .tree()
            .map_err(git_err(format!("reading tree of {oid}")))?;
        let parent_trees: Vec<git2::Tree<'_>> = commit
            .parents()
            .map(|p| p.tree())
            .collect::<Result<_, _>>()
            .map_err(git_err(format!("reading parents of {oid}")))?;
        let first = parent_trees.first();
        let diff = repo
            .diff_tree_to_tree(first, Some(&tree), None)
            .map_err(git_err(format!("diffing {oid}")))?;
        let info = Arc::new(commit_info(&commit, order as u32));
        for delta in diff.deltas() {
            let new = delta.new_file();
            if new.id().is_zero()
                || !matches!(
                    new.mode(),
                    git2::FileMode::Blob | git2::FileMode::BlobExecutable
                )
            {
                continue;
            }
            let Some(path) = new.path_bytes() else {
                continue;
            };
            let path_str = String::from_utf8_lossy(path).into_owned();
            let parents: Vec<Option<BlobId>> = parent_trees
                .iter()
                .map(|t| {
                    t.get_path(Path::new(&path_str))
                        .ok()
                        .map(|e| blob_id(e.id()))
                })
                .collect();
            // A merge that took this file from one parent adds nothing.
            if parents.contains(&Some(blob_id(new.id()))) {
                continue;
            }
            changes.push(Change {
                site: BlobSite {
                    blob: blob_id(new.id()),
                    commit: Some(info.clone()),
                    path: path_str,
                },
                parents,
            });
        }
    }
    Ok(RangeWalk { changes, commits })
}

/// Every (commit, path) in all of history where one of `wanted` appears.
/// Trees known to hold none of them are not entered again.
pub fn all_sites_of(repo: &Repo, wanted: &HashSet<BlobId>) -> Result<Vec<BlobSite>, GitError> {
    let repo = &repo.0;
    let wanted: HashSet<Oid> = wanted.iter().map(|b| oid_of(*b)).collect();
    let wanted = &wanted;
    let mut notes = Vec::new();
    let commits = all_commits(repo, &mut notes, &mut Vec::new(), &AtomicU64::new(0))?;
    // Per tree: the (relative path, blob) pairs of wanted blobs below it.
    let mut memo: HashMap<Oid, Arc<Vec<(String, Oid)>>> = HashMap::new();
    let mut out = Vec::new();
    for (order, oid) in commits.iter().enumerate() {
        let commit = repo
            .find_commit(*oid)
            .map_err(git_err(format!("reading commit {oid}")))?;
        let hits = wanted_below(repo, commit.tree_id(), wanted, &mut memo)?;
        if hits.is_empty() {
            continue;
        }
        let info = Arc::new(commit_info(&commit, order as u32));
        for (path, blob) in hits.iter() {
            out.push(BlobSite {
                blob: blob_id(*blob),
                commit: Some(info.clone()),
                path: path.clone(),
            });
        }
    }
    Ok(out)
}

fn wanted_below(
    repo: &Repository,
    tree_id: Oid,
    wanted: &HashSet<Oid>,
    memo: &mut HashMap<Oid, Arc<Vec<(String, Oid)>>>,
) -> Result<Arc<Vec<(String, Oid)>>, GitError> {
    if let Some(hit) = memo.get(&tree_id) {
        return Ok(hit.clone());
    }
    let tree = repo
        .find_tree(tree_id)
        .map_err(git_err(format!("reading tree {tree_id}")))?;
    let mut hits = Vec::new();
    for entry in tree.iter() {
        let name = String::from_utf8_lossy(entry.name_bytes()).into_owned();
        match entry.kind() {
            Some(ObjectType::Tree) => {
                for (p, b) in wanted_below(repo, entry.id(), wanted, memo)?.iter() {
                    hits.push((format!("{name}/{p}"), *b));
                }
            }
            Some(ObjectType::Blob) if wanted.contains(&entry.id()) => hits.push((name, entry.id())),
            _ => {}
        }
    }
    let hits = Arc::new(hits);
    memo.insert(tree_id, hits.clone());
    Ok(hits)
}

/// A file `git commit` would record: its blob in the index and the lines
/// it adds relative to HEAD (None for a binary file: no line diff).
#[derive(Debug, Clone)]
pub struct StagedFile {
    pub path: String,
    pub blob: BlobId,
    pub old_blob: Option<BlobId>,
    pub added_lines: Option<HashSet<u64>>,
}

/// The index against HEAD (or against nothing before the first commit),
/// with renames paired so a renamed file's unchanged lines are not "added".
pub fn staged_files(repo: &Repo) -> Result<Vec<StagedFile>, GitError> {
    let repo = &repo.0;
    let head_tree = match repo.head() {
        Ok(h) => Some(h.peel_to_tree().map_err(git_err("reading HEAD's tree"))?),
        Err(_) => None, // unborn branch: everything staged is new
    };
    let index = repo.index().map_err(git_err("reading the index"))?;
    let mut opts = git2::DiffOptions::new();
    opts.context_lines(0);
    let mut diff = repo
        .diff_tree_to_index(head_tree.as_ref(), Some(&index), Some(&mut opts))
        .map_err(git_err("diffing the index against HEAD"))?;
    diff.find_similar(Some(git2::DiffFindOptions::new().renames(true)))
        .map_err(git_err("pairing renames"))?;
    let mut out = Vec::new();
    for (i, delta) in diff.deltas().enumerate() {
        let new = delta.new_file();
        if new.id().is_zero()
            || !matches!(
                new.mode(),
                git2::FileMode::Blob | git2::FileMode::BlobExecutable
            )
        {
            continue; // deleted files, submodules, symlinks
        }
        let Some(path) = new.path_bytes() else {
            continue;
        };
        let old = delta.old_file();
        let patch = git2::Patch::from_diff(&diff, i).map_err(git_err("reading the staged diff"))?;
        let added_lines = match patch {
            Some(p) if !new.is_binary() && !old.is_binary() && !p.delta().flags().is_binary() => {
                let mut lines = HashSet::new();
                for h in 0..p.num_hunks() {
                    let n = p.num_lines_in_hunk(h).map_err(git_err("reading a hunk"))?;
                    for l in 0..n {
                        let line = p.line_in_hunk(h, l).map_err(git_err("reading a hunk"))?;
                        if line.origin() == '+' {
                            lines.extend(line.new_lineno().map(u64::from));
                        }
                    }
                }
                Some(lines)
            }
            _ => None,
        };
        out.push(StagedFile {
            path: String::from_utf8_lossy(path).into_owned(),
            blob: blob_id(new.id()),
            old_blob: Some(old.id()).filter(|o| !o.is_zero()).map(blob_id),
            added_lines,
        });
    }
    Ok(out)
}

/// How blobs are read into a sink.
pub struct ReadOptions<'a> {
    /// Worker threads; 0 picks one per core.
    pub threads: usize,
    /// Blobs larger than this are skipped with a warning.
    pub max_size: u64,
    /// Expands archive blobs into their members; `None`: read them as
    /// they are.
    pub archives: Option<&'a Expander>,
}

/// Reads the blob of each of `sites` (under the site's path while read) in
/// parallel, each thread with its own handle on the repository, and pushes
/// it into `sink` as one input.
pub fn read_blobs<S: Sink>(repo: &Repo, sites: &[&BlobSite], opts: &ReadOptions<'_>, sink: &S) {
    let git_dir = repo.0.path();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads)
        .build()
        .expect("a thread pool with default settings builds");
    pool.install(|| {
        sites.par_iter().for_each_init(
            || (Repository::open(git_dir).map(Repo), sink.new_worker()),
            |(handle, worker), site| match handle {
                Ok(handle) => read_blob(handle, site.blob, &site.path, opts, sink, worker),
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
}

/// Reads one blob into `sink` on the caller's thread, as the file at
/// `path`; a blob that cannot be read, or is above the size limit, is a
/// warning.
pub fn read_blob<S: Sink>(
    repo: &Repo,
    id: BlobId,
    path: &str,
    opts: &ReadOptions<'_>,
    sink: &S,
    worker: &mut S::Worker,
) {
    let blob = match repo.0.find_blob(oid_of(id)) {
        Ok(b) => b,
        Err(e) => {
            sink.warning(SourceWarning::Walk(format!(
                "blob {id} ({path}): cannot read: {}",
                e.message()
            )));
            return;
        }
    };
    let data = blob.content();
    if data.len() as u64 > opts.max_size {
        sink.warning(SourceWarning::TooLarge {
            path: format!("{path} (blob {id})"),
            size: data.len() as u64,
            limit: opts.max_size,
        });
        return;
    }
    let origin = Origin::Blob {
        path: path.to_string(),
        blob: id,
    };
    // Reading from memory cannot fail; a blob that is not an archive after
    // all is scanned as it is.
    if let Some(archives) = opts.archives
        && kind_of(&data[..data.len().min(512)]).is_some()
        && archives
            .expand_seekable(&origin, std::io::Cursor::new(data), sink, worker)
            .unwrap_or(false)
    {
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
