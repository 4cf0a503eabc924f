//! `keywarden history` on real repositories built in temp dirs.

mod common;
use common::*;

fn env_file(k: &str) -> String {
    format!("DEBUG=1\nOPENROUTER_API_KEY={k}\n")
}

#[test]
fn key_added_then_deleted_is_attributed_to_the_commit_that_added_it() {
    let repo = GitRepo::new();
    let k = gen_key();
    repo.commit(&[("README.md", Some("hello\n"))], "init");
    let added = repo.commit(&[(".env", Some(&env_file(&k)))], "add config\n\nlong body");
    repo.commit(&[(".env", Some("DEBUG=1\n"))], "remove key");
    let (f, code, _) = history_json(repo.path(), &[]);
    assert_eq!(code, 1);
    assert_eq!(
        attributions(&f),
        [(k.clone(), ".env".into(), added.clone())]
    );
    let c = &f[0]["commit"];
    assert_eq!(c["author"], "Ada Author");
    assert_eq!(c["email"], "ada@example.invalid");
    assert_eq!(c["date"], "2024-03-01T12:00:00+01:00");
    assert_eq!(c["message"], "add config");
    assert_eq!(f[0]["line"], 2);
    assert_eq!(f[0]["column"], 20);
}

#[test]
fn keys_only_on_a_side_branch_or_only_in_a_tag_are_found() {
    let repo = GitRepo::new();
    let (a, b) = (gen_key(), gen_key());
    repo.commit(&[("a.txt", Some("x"))], "init");
    repo.git(&["checkout", "-q", "-b", "feature"]);
    let on_branch = repo.commit(&[("branch.env", Some(&env_file(&a)))], "branch work");
    repo.git(&["checkout", "-q", "main"]);
    repo.git(&["checkout", "-q", "--detach"]);
    let tagged = repo.commit(&[("tag.env", Some(&env_file(&b)))], "tagged only");
    repo.git(&["tag", "-a", "v1", "-m", "release"]);
    repo.git(&["checkout", "-q", "main"]);
    let (f, _, _) = history_json(repo.path(), &[]);
    assert_eq!(attributions(&f), {
        let mut v = vec![
            (a, "branch.env".to_string(), on_branch),
            (b, "tag.env".to_string(), tagged),
        ];
        v.sort();
        v
    });
}

#[test]
fn key_introduced_by_a_merge_resolution_is_attributed_to_the_merge() {
    let repo = GitRepo::new();
    let k = gen_key();
    repo.commit(&[("a.txt", Some("a"))], "init");
    repo.git(&["checkout", "-q", "-b", "side"]);
    repo.commit(&[("side.txt", Some("side"))], "side change");
    repo.git(&["checkout", "-q", "main"]);
    repo.commit(&[("main.txt", Some("main"))], "main change");
    repo.git(&["merge", "-q", "--no-ff", "--no-commit", "side"]);
    std::fs::write(repo.path().join("merged.yaml"), env_file(&k)).unwrap();
    let merge = repo.commit(&[], "merge side");
    assert_eq!(
        repo.git(&["rev-list", "--parents", "-n1", "HEAD"])
            .split(' ')
            .count(),
        3
    );
    let (f, _, _) = history_json(repo.path(), &[]);
    assert_eq!(attributions(&f), [(k, "merged.yaml".into(), merge)]);
}

#[test]
fn renamed_file_is_not_a_new_finding_even_when_edited_after() {
    let repo = GitRepo::new();
    let k = gen_key();
    let added = repo.commit(&[("old.env", Some(&env_file(&k)))], "add");
    repo.git(&["mv", "old.env", "new.env"]);
    repo.commit(&[], "rename");
    repo.commit(
        &[("new.env", Some(&format!("{}# edited\n", env_file(&k))))],
        "edit",
    );
    let (f, _, _) = history_json(repo.path(), &[]);
    assert_eq!(
        attributions(&f),
        [(k.clone(), "old.env".into(), added.clone())]
    );
    // --all-occurrences lists every commit and path that carries it.
    let (f, _, _) = history_json(repo.path(), &["--all-occurrences"]);
    let places: Vec<_> = attributions(&f).into_iter().map(|a| a.1).collect();
    assert_eq!(f.len(), 3, "{places:?}");
    assert!(places.contains(&"old.env".to_string()) && places.contains(&"new.env".to_string()));
}

#[test]
fn same_key_in_several_files_is_one_finding_per_path_at_its_earliest_commit() {
    let repo = GitRepo::new();
    let k = gen_key();
    let first = repo.commit(&[("a.py", Some(&format!("K = '{k}'\n")))], "a");
    repo.commit(&[("a.py", Some(&format!("# v2\nK = '{k}'\n")))], "edit a");
    let second = repo.commit(&[("b.yaml", Some(&format!("key: {k}\n")))], "b");
    let (f, _, _) = history_json(repo.path(), &[]);
    let mut want = vec![
        (k.clone(), "a.py".to_string(), first),
        (k, "b.yaml".to_string(), second),
    ];
    want.sort();
    assert_eq!(attributions(&f), want);
}

#[test]
fn shallow_and_bare_clones_scan_what_is_there() {
    let repo = GitRepo::new();
    let (old, new) = (gen_key(), gen_key());
    repo.commit(&[("old.env", Some(&env_file(&old)))], "old");
    let head = repo.commit(&[("new.env", Some(&env_file(&new)))], "new");
    let shallow = tempfile::tempdir().unwrap();
    repo.clone_to(&shallow.path().join("s"), &["--depth", "1"]);
    let (f, code, err) = history_json(&shallow.path().join("s"), &[]);
    assert_eq!(code, 1, "{err}");
    // The shallow commit holds both files; both keys are found there.
    assert_eq!(f.len(), 2);
    assert!(f.iter().all(|x| x["commit"]["id"] == head.as_str()));
    let bare = shallow.path().join("b.git");
    repo.clone_to(&bare, &["--bare"]);
    let (f, _, _) = history_json(&bare, &[]);
    assert_eq!(f.len(), 2);
}

#[test]
fn empty_repository_is_clean_not_an_error() {
    let repo = GitRepo::new();
    let (f, code, err) = history_json(repo.path(), &[]);
    assert!(f.is_empty());
    assert_eq!(code, 0, "{err}");
}

#[test]
fn submodules_are_skipped_with_a_note_naming_paths_and_commits() {
    let sub = GitRepo::new();
    sub.commit(&[("s.txt", Some("sub"))], "sub");
    let repo = GitRepo::new();
    repo.commit(&[("a.txt", Some("a"))], "init");
    let url = format!("file://{}", sub.path().display());
    let add = |path: &str| {
        repo.git(&[
            "-c",
            "protocol.file.allow=always",
            "submodule",
            "add",
            "-q",
            &url,
            path,
        ]);
    };
    add("vendor/sub");
    repo.commit(&[], "add submodule");
    // Three commits that leave vendor/ as it is: their trees share the
    // subtree that holds the gitlink.
    for n in 0..3 {
        repo.commit(&[("a.txt", Some(&format!("a{n}")))], "edit");
    }
    add("lib/other");
    repo.commit(&[], "add another");
    let out = keywarden()
        .args(["history"])
        .arg(repo.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "note: submodules not scanned: 2 paths (lib/other, vendor/sub), in 5 commits; \
             scan each submodule's own repository"
        ),
        "{err}"
    );
}

#[test]
fn all_objects_also_finds_blobs_no_ref_reaches() {
    let repo = GitRepo::new();
    let k = gen_key();
    repo.commit(&[("a.txt", Some("a"))], "init");
    let blob_file = repo.path().join("loose.txt");
    std::fs::write(&blob_file, env_file(&k)).unwrap();
    let blob = repo.git(&["hash-object", "-w", "loose.txt"]);
    std::fs::remove_file(&blob_file).unwrap();
    let (f, _, _) = history_json(repo.path(), &[]);
    assert!(f.is_empty());
    let (f, code, _) = history_json(repo.path(), &["--all-objects"]);
    assert_eq!(code, 1);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["secret"], k.as_str());
    assert_eq!(f[0]["blob"], blob.as_str());
    assert!(f[0]["commit"].is_null());
}

#[test]
fn range_reports_only_secrets_the_range_added() {
    let repo = GitRepo::new();
    let (old, new) = (gen_key(), gen_key());
    let base = repo.commit(&[("app.env", Some(&env_file(&old)))], "base with old key");
    // Editing the file keeps the old key: not new in the range.
    repo.commit(
        &[("app.env", Some(&format!("{}X=1\n", env_file(&old))))],
        "edit",
    );
    let added = repo.commit(&[("other.env", Some(&env_file(&new)))], "add new key");
    let (f, code, _) = history_json(repo.path(), &["--range", &format!("{base}..HEAD")]);
    assert_eq!(code, 1);
    assert_eq!(
        attributions(&f),
        [(new.clone(), "other.env".into(), added.clone())]
    );
    let (f, _, _) = history_json(repo.path(), &["--since", &base]);
    assert_eq!(attributions(&f), [(new, "other.env".into(), added)]);
    let (f, code, _) = history_json(repo.path(), &["--range", "HEAD..HEAD"]);
    assert!(f.is_empty());
    assert_eq!(code, 0);
}

#[test]
fn range_errors_name_the_bad_revision() {
    let repo = GitRepo::new();
    repo.commit(&[("a.txt", Some("a"))], "init");
    let out = keywarden()
        .args(["history", "--since", "nope"])
        .arg(repo.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("\"nope\" names no commit here"), "{stderr}");
    // In keywarden's words, each cause once: no libgit2 class/code.
    assert!(!stderr.contains("class="), "{stderr}");
    assert_eq!(stderr.matches("not found").count(), 1, "{stderr}");
    let out = keywarden()
        .args(["history", "/no/such/repo"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let dir = tempfile::tempdir().unwrap();
    let out = keywarden()
        .args(["history"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a git repository"));
}

#[test]
fn history_reports_redact_secrets_and_show_the_commit() {
    let repo = GitRepo::new();
    let k = gen_key();
    let id = repo.commit(&[("a.env", Some(&env_file(&k)))], "leak");
    let out = keywarden()
        .env("NO_COLOR", "1")
        .args(["history", "-q"])
        .arg(repo.path())
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains(&k[9..]));
    assert!(
        text.contains(&format!(
            "commit {} by Ada Author <ada@example.invalid> on 2024-03-01T12:00:00+01:00: leak",
            &id[..12]
        )),
        "{text}"
    );
}

#[test]
fn a_corrupt_object_is_reported_the_rest_scanned_and_strict_exits_2() {
    let repo = GitRepo::new();
    let (good, bad) = (gen_key(), gen_key());
    repo.commit(
        &[
            ("good.env", Some(&format!("KEY={good}\n"))),
            ("bad.env", Some(&format!("KEY={bad}\n"))),
        ],
        "two keys",
    );
    let blob = repo.git(&["rev-parse", "HEAD:bad.env"]);
    let blob = blob.trim();
    let object = repo
        .path()
        .join(".git/objects")
        .join(&blob[..2])
        .join(&blob[2..]);
    make_writable(&object);
    std::fs::write(&object, b"this is not a zlib stream").unwrap();

    let out = keywarden()
        .args(["history", repo.path().to_str().unwrap(), "-f", "json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "findings, not an error, by default"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&blob[..12]) || stderr.contains(blob),
        "names the object: {stderr}"
    );
    let found: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["path"], "good.env");

    let strict = keywarden()
        .args([
            "history",
            repo.path().to_str().unwrap(),
            "-f",
            "json",
            "--strict",
        ])
        .output()
        .unwrap();
    assert_eq!(strict.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&strict.stderr).contains("--strict"));
    let found: Vec<serde_json::Value> = serde_json::from_slice(&strict.stdout).unwrap();
    assert_eq!(found.len(), 1, "the report is still written");
}

#[test]
fn a_truncated_pack_is_reported_and_loose_history_still_scanned() {
    let repo = GitRepo::new();
    let (packed, loose) = (gen_key(), gen_key());
    repo.commit(&[("old.env", Some(&format!("KEY={packed}\n")))], "packed");
    repo.git(&["gc", "-q"]);
    repo.commit(&[("new.env", Some(&format!("KEY={loose}\n")))], "loose");
    let pack_dir = repo.path().join(".git/objects/pack");
    let pack = std::fs::read_dir(&pack_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "pack"))
        .expect("git gc wrote a pack");
    make_writable(&pack);
    let len = std::fs::metadata(&pack).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&pack)
        .unwrap()
        .set_len(len / 2)
        .unwrap();

    let out = keywarden()
        .args(["history", repo.path().to_str().unwrap(), "-f", "json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot read commit"), "{stderr}");
    let found: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["path"], "new.env");
    keywarden()
        .args(["history", repo.path().to_str().unwrap(), "--strict", "-q"])
        .assert()
        .code(2);
}

/// Git writes objects read-only; the corruption tests overwrite them.
fn make_writable(path: &std::path::Path) {
    let mut perms = std::fs::metadata(path).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(path, perms).unwrap();
}

#[test]
fn a_single_revision_as_a_range_is_an_error_that_points_to_since() {
    let repo = GitRepo::new();
    repo.commit(&[("a.env", Some(&env_file(&gen_key())))], "init");
    for range in ["HEAD", "main"] {
        let out = keywarden()
            .args(["history", "--range", range])
            .arg(repo.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("is one revision, not a range"), "{stderr}");
        assert!(stderr.contains("--since"), "{stderr}");
    }
}

#[test]
fn a_range_of_no_commits_says_so_and_strict_fails_it() {
    let repo = GitRepo::new();
    repo.commit(&[("a.env", Some(&env_file(&gen_key())))], "init");
    let run = |extra: &[&str]| {
        keywarden()
            .args(["history", "-q", "--range", "HEAD..HEAD"])
            .args(extra)
            .arg(repo.path())
            .output()
            .unwrap()
    };
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("range HEAD..HEAD holds no commits"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["--strict"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_symmetric_range_scans_both_sides_since_the_merge_base() {
    let repo = GitRepo::new();
    let (on_main, on_topic, before) = (gen_key(), gen_key(), gen_key());
    repo.commit(&[("base.env", Some(&env_file(&before)))], "base");
    repo.git(&["checkout", "-q", "-b", "topic"]);
    let topic = repo.commit(&[("topic.env", Some(&env_file(&on_topic)))], "topic key");
    repo.git(&["checkout", "-q", "main"]);
    let main = repo.commit(&[("main.env", Some(&env_file(&on_main)))], "main key");
    let (f, code, stderr) = history_json(repo.path(), &["--range", "main...topic"]);
    assert_eq!(code, 1, "{stderr}");
    let mut want = vec![
        (on_main.clone(), "main.env".to_string(), main),
        (on_topic.clone(), "topic.env".to_string(), topic.clone()),
    ];
    want.sort();
    assert_eq!(attributions(&f), want);
    // Two dots: only the topic's side.
    let (f, _, _) = history_json(repo.path(), &["--range", "main..topic"]);
    assert_eq!(
        attributions(&f),
        [(on_topic, "topic.env".to_string(), topic)]
    );
}

/// An object whose content is not what its id says: the loose file of
/// another blob copied over it (a valid zlib stream, a wrong hash).
#[test]
fn strict_checks_that_objects_match_their_ids_and_the_default_does_not_pay_for_it() {
    let repo = GitRepo::new();
    let (kept, swapped_in) = (gen_key(), gen_key());
    repo.commit(&[("a.env", Some(&format!("KEY={kept}\n")))], "one key");
    let blob = repo.git(&["rev-parse", "HEAD:a.env"]);
    let blob = blob.trim().to_string();
    let other_file = repo.path().join("other.txt");
    std::fs::write(&other_file, format!("KEY={swapped_in}\n")).unwrap();
    let other = repo.git(&["hash-object", "-w", "other.txt"]);
    std::fs::remove_file(&other_file).unwrap();
    let loose = |id: &str| {
        repo.path()
            .join(".git/objects")
            .join(&id[..2])
            .join(&id[2..])
    };
    make_writable(&loose(&blob));
    std::fs::copy(loose(other.trim()), loose(&blob)).unwrap();

    // By default objects are not re-hashed (a third of the history scan's
    // time): what the object holds is scanned.
    let out = keywarden()
        .args(["history", repo.path().to_str().unwrap(), "-f", "json"])
        .args(["--show-secrets"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["secret"], swapped_in.as_str());

    // --strict proves every object is what its id says.
    let strict = keywarden()
        .args(["history", repo.path().to_str().unwrap(), "-f", "json"])
        .args(["--strict"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&strict.stderr);
    assert_eq!(strict.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&blob[..12]), "names the object: {stderr}");
    let found: Vec<serde_json::Value> = serde_json::from_slice(&strict.stdout).unwrap();
    assert!(found.is_empty(), "{found:?}");
}
