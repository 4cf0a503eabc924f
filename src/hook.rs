//! Installing and removing keywarden's git pre-commit hook.
//!
//! The hook runs `keywarden staged`. Only a hook keywarden wrote (it carries
//! [`MARKER`]) is replaced or removed; any other hook needs `force`.

use crate::sources::git::{self, GitError};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The line that marks a hook as keywarden's own.
pub const MARKER: &str = "# keywarden pre-commit hook";

/// Why a hook could not be installed or removed.
#[derive(Debug, Error)]
pub enum HookError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("{0}: a different pre-commit hook exists; use --force to replace it")]
    Foreign(PathBuf),
    #[error("{0}: not keywarden's hook; left as it is")]
    NotOurs(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Where git looks for hooks: `core.hooksPath` (relative to the work tree)
/// or `.git/hooks`.
pub fn hooks_dir(repo_path: &Path) -> Result<PathBuf, HookError> {
    let repo = git::open(repo_path)?;
    let base = repo.workdir().unwrap_or_else(|| repo.path()).to_path_buf();
    let configured = repo
        .config()
        .ok()
        .and_then(|c| c.get_path("core.hooksPath").ok());
    Ok(match configured {
        Some(p) if p.is_absolute() => p,
        Some(p) => base.join(p),
        None => repo.path().join("hooks"),
    })
}

/// The hook script: runs `exe` (falling back to `keywarden` on PATH).
pub fn script(exe: &Path) -> String {
    let exe = exe.display().to_string().replace('\'', "'\\''");
    format!(
        "#!/bin/sh\n{MARKER}: installed by `keywarden hook install`,\n\
         # removed by `keywarden hook uninstall`. Refuses commits that add secrets.\n\
         KEYWARDEN='{exe}'\n\
         [ -x \"$KEYWARDEN\" ] || KEYWARDEN=keywarden\n\
         exec \"$KEYWARDEN\" staged\n"
    )
}

/// Writes the pre-commit hook; returns its path.
pub fn install(repo_path: &Path, exe: &Path, force: bool) -> Result<PathBuf, HookError> {
    let dir = hooks_dir(repo_path)?;
    let path = dir.join("pre-commit");
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| HookError::Io { path, source }
    };
    if let Ok(existing) = std::fs::read_to_string(&path)
        && !existing.contains(MARKER)
        && !force
    {
        return Err(HookError::Foreign(path));
    }
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    std::fs::write(&path, script(exe)).map_err(io(&path))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).map_err(io(&path))?;
    Ok(path)
}

/// Removes the pre-commit hook if keywarden wrote it; returns its path, or
/// None when there was none.
pub fn uninstall(repo_path: &Path) -> Result<Option<PathBuf>, HookError> {
    let path = hooks_dir(repo_path)?.join("pre-commit");
    match std::fs::read_to_string(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(HookError::Io { path, source }),
        Ok(text) if !text.contains(MARKER) => Err(HookError::NotOurs(path)),
        Ok(_) => {
            std::fs::remove_file(&path).map_err(|source| HookError::Io {
                path: path.clone(),
                source,
            })?;
            Ok(Some(path))
        }
    }
}
