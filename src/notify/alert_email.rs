//! The "your revoked key is still being used" alert: the attempts made
//! with a key after it was revoked for leaking, by network, so that the
//! owner can tell their own deploy still holding it from someone else. It
//! names the key by name and label, never the key.

use super::email::shown;
use crate::keystore::{OutboxEmail, UsageSummary, rfc3339};
use html_escape::encode_text;

/// How many networks the email lists.
const NETWORKS_SHOWN: usize = 10;

pub fn subject(email: &OutboxEmail) -> String {
    format!(
        "Your revoked OpenRouter API key \"{}\" ({}) is still being used",
        shown(&email.key.name, 120),
        shown(&email.key.label, 40)
    )
}

/// The evidence as lines of plain text.
fn evidence_lines(email: &OutboxEmail) -> Vec<String> {
    let k = &email.key;
    let mut lines = vec![
        format!(
            "Key:       {} ({} key {}, id {})",
            shown(&k.name, 120),
            k.key_type,
            shown(&k.label, 40),
            shown(&k.id, 40)
        ),
        format!(
            "Revoked:   {}",
            k.revoked_at.map(rfc3339).unwrap_or_else(|| "-".into())
        ),
    ];
    let empty = UsageSummary::from_counts(Vec::new(), Vec::new(), 0);
    let e = email.evidence.as_ref().unwrap_or(&empty);
    lines.push(format!(
        "Attempts since then: {} from {} network{}",
        e.requests,
        e.networks,
        if e.networks == 1 { "" } else { "s" }
    ));
    if let (Some(first), Some(last)) = (e.first, e.last) {
        lines.push(format!(
            "First: {}   Last: {}",
            rfc3339(first),
            rfc3339(last)
        ));
    }
    for n in e.by_network.iter().take(NETWORKS_SHOWN) {
        lines.push(format!(
            "  {:<24} {:>6} attempts, {} to {}",
            n.name,
            n.requests,
            rfc3339(n.first),
            rfc3339(n.last)
        ));
    }
    lines
}

const ADVICE: &str = "Requests made with the key are refused, but something still sends it. \
If a network above is your own (a server, CI, a laptop), that deployment still holds the \
revoked key: give it the new key. Networks you do not know are someone else trying the \
leaked key.";

pub fn text_body(email: &OutboxEmail) -> String {
    let mut out = String::from(
        "Hello,\n\nOne of your OpenRouter API keys was revoked after it leaked, and it is still being used.\n\n",
    );
    for line in evidence_lines(email) {
        out.push_str(&line);
        out.push('\n');
    }
    out.push('\n');
    out.push_str(ADVICE);
    out.push_str("\n\n-- keywarden\n");
    out
}

pub fn html_body(email: &OutboxEmail) -> String {
    let lines: String = evidence_lines(email)
        .iter()
        .map(|l| format!("{}\n", encode_text(l)))
        .collect();
    format!(
        "<!DOCTYPE html><html><body><p>Hello,</p>\
         <p>One of your OpenRouter API keys was revoked after it leaked, and it is <strong>still being used</strong>.</p>\
         <pre>{lines}</pre><p>{}</p><p>&mdash; keywarden</p></body></html>",
        encode_text(ADVICE)
    )
}
