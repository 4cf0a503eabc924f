//! The owner alerts: a revoked key still being used (the attempts made
//! with it after it was revoked for leaking, by network, so that the owner
//! can tell their own deploy still holding it from someone else), a key
//! used from a new network, and a spike in a key's use. Each names the key
//! by name and label, never the key, and shows its evidence.

use super::email::shown;
use crate::keystore::{
    AlertEvidence, NEW_NETWORK, NewNetworkEvidence, OutboxEmail, STILL_IN_USE, SpikeEvidence,
    USAGE_SPIKE, UsageSummary, rfc3339,
};
use html_escape::encode_text;

/// Whether outbox kind `kind` is one of these alerts.
pub fn is_alert(kind: &str) -> bool {
    matches!(kind, STILL_IN_USE | NEW_NETWORK | USAGE_SPIKE)
}

/// How many networks the email lists.
const NETWORKS_SHOWN: usize = 10;

pub fn subject(email: &OutboxEmail) -> String {
    let what = match email.kind.as_str() {
        NEW_NETWORK => "was used from a new network",
        USAGE_SPIKE => "shows a sudden spike in use",
        _ => "is still being used",
    };
    let revoked = if email.kind == STILL_IN_USE {
        "revoked "
    } else {
        ""
    };
    format!(
        "Your {revoked}OpenRouter API key \"{}\" ({}) {what}",
        shown(&email.key.name, 120),
        shown(&email.key.label, 40)
    )
}

/// The key, as every alert names it.
fn key_line(email: &OutboxEmail) -> String {
    let k = &email.key;
    format!(
        "Key:       {} ({} key {}, id {})",
        shown(&k.name, 120),
        k.key_type,
        shown(&k.label, 40),
        shown(&k.id, 40)
    )
}

fn new_network_lines(email: &OutboxEmail, e: &NewNetworkEvidence) -> Vec<String> {
    let mut lines = vec![
        key_line(email),
        format!("New network: {}", shown(&e.network, 60)),
        format!("First seen:  {}", rfc3339(e.first_seen)),
        format!(
            "Until then it was used from {} network{} since {}; most often:",
            e.known_networks,
            if e.known_networks == 1 { "" } else { "s" },
            rfc3339(e.history_since)
        ),
    ];
    for n in &e.usual_networks {
        lines.push(format!(
            "  {:<24} {:>8} requests since {}",
            shown(&n.network, 60),
            n.requests,
            rfc3339(n.since)
        ));
    }
    lines
}

fn spike_lines(email: &OutboxEmail, e: &SpikeEvidence) -> Vec<String> {
    vec![
        key_line(email),
        format!(
            "{} requests in the last {} minutes (to {})",
            e.recent_requests,
            e.window_minutes,
            rfc3339(e.detected_at)
        ),
        format!(
            "Usually about {} per {} minutes (from {} to {})",
            e.usual_per_5_minutes,
            e.window_minutes,
            rfc3339(e.usual_from),
            rfc3339(e.usual_until)
        ),
    ]
}

/// The evidence as lines of plain text.
fn evidence_lines(email: &OutboxEmail) -> Vec<String> {
    match &email.alert {
        Some(AlertEvidence::NewNetwork(e)) => return new_network_lines(email, e),
        Some(AlertEvidence::Spike(e)) => return spike_lines(email, e),
        None => {}
    }
    let k = &email.key;
    let mut lines = vec![
        key_line(email),
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

const STILL_IN_USE_ADVICE: &str = "Requests made with the key are refused, but something still sends it. \
If a network above is your own (a server, CI, a laptop), that deployment still holds the \
revoked key: give it the new key. Networks you do not know are someone else trying the \
leaked key.";

const NEW_NETWORK_ADVICE: &str = "If you know this network (a new server, office or CI \
runner), nothing needs doing. If you do not, someone else may hold the key: rotate it \
(`keywarden keys rotate`) and restrict it to your networks with --allow-ip.";

const SPIKE_ADVICE: &str = "If you expected more traffic, nothing needs doing. If not, the \
key may be in someone else's hands or in a runaway job: check `keywarden keys activity` \
for where the requests come from, and rotate the key if they are not yours.";

/// The opening sentence and the advice of an alert.
fn wording(email: &OutboxEmail) -> (&'static str, &'static str) {
    match email.kind.as_str() {
        NEW_NETWORK => (
            "One of your OpenRouter API keys was used from a new network, one it had never been used from.",
            NEW_NETWORK_ADVICE,
        ),
        USAGE_SPIKE => (
            "One of your OpenRouter API keys shows a sudden spike in use, far over its usual rate.",
            SPIKE_ADVICE,
        ),
        _ => (
            "One of your OpenRouter API keys was revoked after it leaked, and it is still being used.",
            STILL_IN_USE_ADVICE,
        ),
    }
}

pub fn text_body(email: &OutboxEmail) -> String {
    let (opening, advice) = wording(email);
    let mut out = format!("Hello,\n\n{opening}\n\n");
    for line in evidence_lines(email) {
        out.push_str(&line);
        out.push('\n');
    }
    out.push('\n');
    out.push_str(advice);
    out.push_str("\n\n-- keywarden\n");
    out
}

pub fn html_body(email: &OutboxEmail) -> String {
    let lines: String = evidence_lines(email)
        .iter()
        .map(|l| format!("{}\n", encode_text(l)))
        .collect();
    let (opening, advice) = wording(email);
    format!(
        "<!DOCTYPE html><html><body><p>Hello,</p><p>{}</p>\
         <pre>{lines}</pre><p>{}</p><p>&mdash; keywarden</p></body></html>",
        encode_text(opening),
        encode_text(advice)
    )
}
