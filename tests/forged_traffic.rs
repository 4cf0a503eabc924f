//! 10,000 forged partner reports — random, replayed with a changed body,
//! truncated and mis-encoded signatures — all carrying a live key: every
//! one is refused, nothing in the store changes, and valid reports sent
//! meanwhile are answered.

mod common;

use base64::Engine;
use common::create_key;
use common::db::TestDb;
use common::github::{Signer, serve_trusting};
use common::server::{key_info, post};

const FORGED: usize = 10_000;

#[test]
fn ten_thousand_forged_reports_are_refused_and_change_nothing() {
    let db = TestDb::sqlite();
    let signer = Signer::new();
    let (server, _keys) = serve_trusting(db.url(), &signer, &[]);
    let (live, _) = create_key(db.url(), &["--owner", "dev@example.com", "--name", "n"]);
    let url = server.url("/github/secret-scanning");
    let body_for = |token: &str| {
        format!(
            r#"[{{"token":"{token}","type":"openrouter_api_key","url":"https://github.com/x","source":"commit"}}]"#
        )
    };
    let genuine_body = body_for(&common::gen_key());
    let genuine_sig = signer.sign(genuine_body.as_bytes());
    let forged_body = body_for(&live);
    let truncated = {
        let sig = signer.sign(forged_body.as_bytes());
        sig[..sig.len() - 8].to_string()
    };
    let b64 = &base64::engine::general_purpose::STANDARD;
    let threads = 4;
    let outcomes: Vec<(usize, usize, usize)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (url, signer, forged_body, truncated) =
                    (&url, &signer, &forged_body, &truncated);
                let (genuine_body, genuine_sig) = (&genuine_body, &genuine_sig);
                s.spawn(move || {
                    let (mut refused, mut valid_ok, mut other) = (0, 0, 0);
                    for i in (t..FORGED).step_by(threads) {
                        let signature = match i % 4 {
                            // Random bytes, base64-encoded.
                            0 => {
                                let mut bytes = [0u8; 72];
                                getrandom::fill(&mut bytes).unwrap();
                                b64.encode(bytes)
                            }
                            // A real signature of another body (replay).
                            1 => genuine_sig.clone(),
                            // A real signature, truncated.
                            2 => truncated.clone(),
                            // Not base64 at all.
                            _ => format!("%%{i}%%"),
                        };
                        let reply = post(
                            url,
                            &[
                                ("Github-Public-Key-Identifier", &signer.id),
                                ("Github-Public-Key-Signature", &signature),
                            ],
                            forged_body.as_bytes(),
                        );
                        match reply.status {
                            400 | 401 => refused += 1,
                            _ => other += 1,
                        }
                        if i % 500 == 0 {
                            let reply = post(
                                url,
                                &[
                                    ("Github-Public-Key-Identifier", &signer.id),
                                    ("Github-Public-Key-Signature", genuine_sig),
                                ],
                                genuine_body.as_bytes(),
                            );
                            if reply.status == 200 {
                                valid_ok += 1;
                            }
                        }
                    }
                    (refused, valid_ok, other)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let refused: usize = outcomes.iter().map(|o| o.0).sum();
    let valid_ok: usize = outcomes.iter().map(|o| o.1).sum();
    let other: usize = outcomes.iter().map(|o| o.2).sum();
    assert_eq!((refused, other), (FORGED, 0), "every forged report refused");
    assert_eq!(valid_ok, FORGED / 500, "valid reports answered meanwhile");
    assert_eq!(
        key_info(&server, &live).status,
        200,
        "the live key was never revoked"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let changed = rt.block_on(db.query_i64(
        "SELECT (SELECT COUNT(*) FROM incidents) + (SELECT COUNT(*) FROM outbox) \
         + (SELECT COUNT(*) FROM revocations)",
    ));
    assert_eq!(changed, [0], "no state change");
    let metrics = common::server::get(&server.admin_url("/metrics"), &[]).body;
    assert!(
        metrics.contains("keywarden_partner_signature_failures_total"),
        "{metrics}"
    );
}
