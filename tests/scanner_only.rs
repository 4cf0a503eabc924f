//! The scanner-only build (the default features): what the pre-commit hook
//! and the Action compile from source. It must leave the responder's stack
//! out.

use std::process::Command;

const RESPONDER_STACK: [&str; 8] = [
    "tokio", "axum", "hyper", "sqlx", "octocrab", "lettre", "tower", "governor",
];

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    cmd
}

#[test]
fn the_scanner_only_build_leaves_the_responders_stack_out() {
    // What the default build depends on: none of the responder's crates.
    let tree = cargo()
        .args(["tree", "--locked", "-e", "normal", "--prefix", "none"])
        .output()
        .unwrap();
    assert!(
        tree.status.success(),
        "{}",
        String::from_utf8_lossy(&tree.stderr)
    );
    let crates: Vec<String> = String::from_utf8_lossy(&tree.stdout)
        .lines()
        .filter_map(|l| l.split(' ').next().map(str::to_string))
        .collect();
    for name in RESPONDER_STACK {
        assert!(
            !crates.iter().any(|c| c == name),
            "{name} is in the scanner-only build"
        );
    }
    assert!(
        crates.iter().any(|c| c == "git2"),
        "the tree was read: {crates:?}"
    );
    // How it builds and behaves: tests/action.rs, where the Action falls
    // back to building it.
}
