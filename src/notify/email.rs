//! The "your key was revoked" email: plain text and HTML parts saying which
//! key, where it was found, what was done and what to do now.

use super::NotifyError;
use crate::keystore::{OutboxEmail, rfc3339};
use html_escape::encode_text;
use lettre::Message;
use lettre::message::{Mailbox, MultiPart};

/// The subject line names the key (by name and label).
pub fn subject(email: &OutboxEmail) -> String {
    format!(
        "Your OpenRouter API key \"{}\" ({}) was revoked after it leaked",
        email.key.name, email.key.label
    )
}

struct Facts {
    key: String,
    found: String,
    reported: String,
    revoked: String,
}

fn facts(email: &OutboxEmail) -> Facts {
    let k = &email.key;
    let reporter = match email.reporter.as_str() {
        "github-secret-scanning" => "GitHub secret scanning",
        other => other,
    };
    Facts {
        key: format!("{} ({} key {}, id {})", k.name, k.key_type, k.label, k.id),
        found: format!(
            "{} (source: {})",
            email
                .url
                .as_deref()
                .unwrap_or("a public location GitHub did not name"),
            email.source
        ),
        reported: format!("{} by {reporter}", rfc3339(email.reported_at)),
        revoked: k.revoked_at.map(rfc3339).unwrap_or_else(|| "-".into()),
    }
}

const STEPS: [&str; 3] = [
    "Create a new key to replace it (`keywarden keys create`, or your dashboard).",
    "Put the new key everywhere the old one was used (CI secrets, .env files, deployments), and remove the old key from the code and its git history.",
    "Review the old key's recent usage for requests you do not recognise.",
];

fn text_body(f: &Facts) -> String {
    let mut out = String::from(
        "Hello,\n\nOne of your OpenRouter API keys was found in public and has been revoked.\n\n",
    );
    out.push_str(&format!(
        "Key:       {}\nFound at:  {}\nReported:  {}\nRevoked:   {}\n\n",
        f.key, f.found, f.reported, f.revoked
    ));
    out.push_str(
        "The key no longer works: every request made with it is refused.\n\nWhat to do now:\n",
    );
    for (i, step) in STEPS.iter().enumerate() {
        out.push_str(&format!("{}. {step}\n", i + 1));
    }
    out.push_str("\n-- keywarden\n");
    out
}

fn html_body(f: &Facts) -> String {
    let row = |name: &str, value: &str| {
        format!(
            "<tr><th align=\"left\">{name}</th><td>{}</td></tr>",
            encode_text(value)
        )
    };
    let steps: String = STEPS
        .iter()
        .map(|s| format!("<li>{}</li>", encode_text(s)))
        .collect();
    format!(
        "<!DOCTYPE html><html><body><p>Hello,</p>\
         <p>One of your OpenRouter API keys was found in public and has been <strong>revoked</strong>.</p>\
         <table>{}{}{}{}</table>\
         <p>The key no longer works: every request made with it is refused.</p>\
         <p>What to do now:</p><ol>{steps}</ol><p>&mdash; keywarden</p></body></html>",
        row("Key", &f.key),
        row("Found at", &f.found),
        row("Reported", &f.reported),
        row("Revoked", &f.revoked),
    )
}

/// Writes the email for `email` from `from`. A recipient that is not an
/// address is a permanent error.
pub fn render(email: &OutboxEmail, from: &Mailbox) -> Result<Message, NotifyError> {
    let to: Mailbox = email
        .recipient
        .parse()
        .map_err(|e| NotifyError::BadRecipient(format!("{:?}: {e}", email.recipient)))?;
    let f = facts(email);
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(subject(email))
        .message_id(Some(format!(
            "<outbox-{}.{}@keywarden>",
            email.id, email.key.id
        )))
        .multipart(MultiPart::alternative_plain_html(
            text_body(&f),
            html_body(&f),
        ))
        .map_err(|e| NotifyError::BadRecipient(e.to_string()))
}
