//! Scanning what `git commit` would record: blobs from the index, and only
//! secrets on lines the commit adds.

use super::{ScanResult, ScanStats, Scanner, finish};
use crate::sources::git::{self, GitError, ReadOptions, Repo};
use crate::sources::{BlobId, Sink, SourceWarning};
use std::collections::HashSet;
use std::path::Path;

impl Scanner {
    /// Scans the staged changes of the repository at `repo_path`.
    pub fn scan_staged(
        &self,
        repo_path: &Path,
        stats: &ScanStats,
        on_warning: &(dyn Fn(SourceWarning) + Sync),
    ) -> Result<ScanResult, GitError> {
        let repo = Repo::open(repo_path)?;
        let staged = git::staged_files(&repo)?;
        let collector = self.collector(stats, on_warning);
        let sink = self.decoding(&collector);
        let mut worker = sink.new_worker();
        for file in &staged {
            if self.allowlist.allows_path(&file.path) {
                continue;
            }
            self.scan_index_blob(&repo, &sink, &mut worker, file.blob, &file.path);
        }
        let mut result = finish(collector);
        // Binary files have no line diff: keep secrets the old version lacked.
        let old_secrets = |oid: Option<BlobId>, path: &str| -> HashSet<(String, Vec<u8>)> {
            let Some(oid) = oid else {
                return HashSet::new();
            };
            let quiet = ScanStats::default();
            let c = self.collector(&quiet, on_warning);
            let sink = self.decoding(&c);
            let mut w = sink.new_worker();
            self.scan_index_blob(&repo, &sink, &mut w, oid, path);
            finish(c)
                .findings
                .into_iter()
                .map(|f| (f.rule_id, f.secret.expose().to_vec()))
                .collect()
        };
        let mut kept = Vec::new();
        for f in result.findings {
            let Some(file) = staged.iter().find(|s| s.path == f.file_path()) else {
                continue;
            };
            // Lines of an archive's member are not lines of the diff.
            let keep = match (&file.added_lines, &f.member) {
                (Some(lines), None) => lines.contains(&f.line),
                _ => !old_secrets(file.old_blob, &file.path)
                    .contains(&(f.rule_id.clone(), f.secret.expose().to_vec())),
            };
            if keep {
                kept.push(f);
            }
        }
        result.findings = kept;
        Ok(result)
    }

    fn scan_index_blob<S: Sink>(
        &self,
        repo: &Repo,
        sink: &S,
        worker: &mut S::Worker,
        blob: BlobId,
        path: &str,
    ) {
        let archives = self.expander();
        let read = ReadOptions {
            threads: 1,
            max_size: u64::MAX,
            archives: archives.as_deref(),
        };
        git::read_blob(repo, blob, path, &read, sink, worker);
    }
}
