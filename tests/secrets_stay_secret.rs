//! No whole key anywhere: a full run — keys created, checked, leaked into
//! files, scanned in every report format, verified, reported by GitHub,
//! revoked, emailed — then every place the keys could land is searched.

mod common;

use common::db::TestDb;
use common::github::Signer;
use common::server::{get, key_info, post};
use common::smtp::SmtpSink;
use common::{create_key, keywarden, temp_tree};

const FORMATS: [&str; 6] = ["text", "json", "jsonl", "sarif", "github", "markdown"];

async fn no_whole_key_anywhere(db: TestDb) {
    let smtp = SmtpSink::start_new();
    let signer = Signer::new();
    let (server, _keys) = common::github::serve_trusting(
        db.url(),
        &signer,
        &[
            "--smtp-url",
            &smtp.url(),
            "--mail-poll",
            "50ms",
            "--log",
            "debug",
        ],
    );
    let owner = ["--owner", "dev@example.com", "--name", "n"];
    let (leaked, _) = create_key(db.url(), &owner);
    let (kept, _) = create_key(db.url(), &owner);
    let keys = [leaked.clone(), kept.clone()];
    // Outputs collected from every surface.
    let mut outputs: Vec<(String, String)> = Vec::new();
    for key in &keys {
        outputs.push(("key check".into(), key_info(&server, key).body));
    }
    let tree = temp_tree(&[
        ("app/.env", format!("A={leaked}\nB={kept}\n").as_bytes()),
        (
            "app/config.json",
            format!("{{\"k\": \"{kept}\"}}").as_bytes(),
        ),
    ]);
    for format in FORMATS {
        let out = keywarden()
            .current_dir(tree.path())
            .args([
                "scan",
                ".",
                "-f",
                format,
                "--verify",
                "--verify-url",
                &server.base,
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{format}");
        outputs.push((
            format!("scan -f {format}"),
            String::from_utf8_lossy(&out.stdout).into(),
        ));
        outputs.push((
            format!("scan stderr ({format})"),
            String::from_utf8_lossy(&out.stderr).into(),
        ));
    }
    let body = serde_json::to_vec(&serde_json::json!([{
        "token": leaked, "type": "openrouter_api_key", "url": "https://github.com/a/b", "source": "commit"
    }]))
    .unwrap();
    let reply = post(
        &server.url("/github/secret-scanning"),
        &[
            ("Github-Public-Key-Identifier", &signer.id),
            ("Github-Public-Key-Signature", &signer.sign(&body)),
        ],
        &body,
    );
    assert_eq!(reply.status, 200);
    outputs.push(("partner answer".into(), reply.body));
    for key in &keys {
        outputs.push(("key check after".into(), key_info(&server, key).body));
    }
    let mail = smtp.wait_for(1);
    outputs.push(("email".into(), mail[0].data.clone()));
    for args in [
        &["keys", "list"][..],
        &["keys", "list", "--json"],
        &["outbox", "list", "--json"],
    ] {
        let out = keywarden()
            .args(args)
            .args(["--database-url", db.url()])
            .output()
            .unwrap();
        outputs.push((args.join(" "), String::from_utf8_lossy(&out.stdout).into()));
    }
    outputs.push((
        "metrics".into(),
        get(&server.admin_url("/metrics"), &[]).body,
    ));
    outputs.push(("readyz".into(), get(&server.admin_url("/readyz"), &[]).body));
    std::thread::sleep(std::time::Duration::from_millis(200));
    outputs.push(("server log (debug)".into(), server.log_text()));
    outputs.push(("store".into(), db.raw_contents().await));

    for (place, text) in &outputs {
        for key in &keys {
            assert!(
                !text.contains(&key[9..]),
                "{place} holds a whole key:\n{text}"
            );
        }
    }
    // The search itself can see a key: --show-secrets prints it.
    let shown = keywarden()
        .current_dir(tree.path())
        .args(["scan", ".", "--show-secrets"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&shown.stdout).contains(&kept[9..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_whole_key_anywhere_on_sqlite() {
    no_whole_key_anywhere(TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_whole_key_anywhere_on_postgres() {
    no_whole_key_anywhere(TestDb::postgres().await).await;
}
