//! The "your key was revoked" email: plain text and HTML parts saying which
//! key, where it was found, what was done and what to do now.

use super::NotifyError;
use super::alert_email::is_alert;
use crate::keystore::{OutboxEmail, rfc3339};
use html_escape::encode_text;
use lettre::Message;
use lettre::message::{Mailbox, MultiPart};

/// How many characters of a report's URL an email shows.
const MAX_URL_CHARS: usize = 300;
/// How many characters of a key's name an email shows.
const MAX_NAME_CHARS: usize = 120;

/// Text from a report or a key record, made one line of data: hostile
/// characters escaped, length capped.
pub(super) fn shown(text: &str, max_chars: usize) -> String {
    crate::untrusted::one_line(text, max_chars)
}

/// The subject line names the key (by name and label).
pub fn subject(email: &OutboxEmail) -> String {
    if is_alert(&email.kind) {
        return super::alert_email::subject(email);
    }
    format!(
        "Your OpenRouter API key \"{}\" ({}) was revoked after it leaked",
        shown(&email.key.name, MAX_NAME_CHARS),
        shown(&email.key.label, 40)
    )
}

/// Where GitHub says the key was found, as the email shows it.
enum Place {
    /// A clean `https://` URL: a link in the HTML part.
    Link(String),
    /// Anything else: shown as text only, defanged so that no mail client
    /// turns it into a link.
    Text(String),
}

impl Place {
    fn of(url: Option<&str>) -> Place {
        let Some(url) = url else {
            return Place::Text("a public location GitHub did not name".into());
        };
        // The host is what the owner reads first: no user part before it
        // (`https://github.com@evil.example/`) and nothing but a host name.
        let authority = url
            .strip_prefix("https://")
            .map(|rest| rest.split(['/', '?', '#']).next().unwrap_or(""));
        let clean = authority.is_some_and(|host| {
            !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'))
        }) && url.chars().count() <= MAX_URL_CHARS
            && url
                .chars()
                .all(|c| c.is_ascii_graphic() && !matches!(c, '"' | '<' | '>' | '\\' | '`'));
        if clean {
            Place::Link(url.to_string())
        } else {
            Place::Text(defang(&shown(url, MAX_URL_CHARS)))
        }
    }

    fn text(&self) -> &str {
        match self {
            Place::Link(s) | Place::Text(s) => s,
        }
    }
}

/// `http` → `hxxp`, `://` → `[:]//` and `www.` → `www[.]`, the usual way
/// to show an address that must not be followed.
fn defang(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if rest
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case("http"))
        {
            out.push_str(if rest.starts_with('H') {
                "Hxxp"
            } else {
                "hxxp"
            });
            rest = &rest[4..];
        } else if rest.starts_with("://") {
            out.push_str("[:]//");
            rest = &rest[3..];
        } else if rest
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case("www."))
        {
            out.push_str(&rest[..3]);
            out.push_str("[.]");
            rest = &rest[4..];
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

struct Facts {
    key: String,
    place: Place,
    source: String,
    reported: String,
    revoked: String,
}

fn facts(email: &OutboxEmail) -> Facts {
    let k = &email.key;
    let reporter = match email.reporter.as_str() {
        "github-secret-scanning" => "GitHub secret scanning".to_string(),
        other => shown(other, 60),
    };
    Facts {
        key: format!(
            "{} ({} key {}, id {})",
            shown(&k.name, MAX_NAME_CHARS),
            k.key_type,
            shown(&k.label, 40),
            shown(&k.id, 40)
        ),
        place: Place::of(email.url.as_deref()),
        source: shown(&email.source, 40),
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
        "Key:       {}\nFound at:  {} (source: {})\nReported:  {}\nRevoked:   {}\n\n",
        f.key,
        f.place.text(),
        f.source,
        f.reported,
        f.revoked
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
    let found = match &f.place {
        Place::Link(url) => format!(
            "<tr><th align=\"left\">Found at</th><td><a href=\"{}\">{}</a> (source: {})</td></tr>",
            html_escape::encode_double_quoted_attribute(url),
            encode_text(url),
            encode_text(&f.source)
        ),
        Place::Text(text) => row("Found at", &format!("{text} (source: {})", f.source)),
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
        found,
        row("Reported", &f.reported),
        row("Revoked", &f.revoked),
    )
}

/// Writes the email for `email` from `from`. A recipient that is not
/// exactly one plain address (a display name hiding another address, a
/// list) is a permanent error: the email would not reach the owner.
pub fn render(email: &OutboxEmail, from: &Mailbox) -> Result<Message, NotifyError> {
    let refuse = || {
        NotifyError::BadRecipient(format!(
            "\"{}\" is not exactly one plain email address",
            shown(&email.recipient, 120)
        ))
    };
    if !crate::keystore::is_plain_address(&email.recipient) {
        return Err(refuse());
    }
    let to: Mailbox = email.recipient.parse().map_err(|_| refuse())?;
    let (text, html) = if is_alert(&email.kind) {
        (
            super::alert_email::text_body(email),
            super::alert_email::html_body(email),
        )
    } else {
        let f = facts(email);
        (text_body(&f), html_body(&f))
    };
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(subject(email))
        .message_id(Some(format!(
            "<outbox-{}.{}@keywarden>",
            email.id, email.key.id
        )))
        .multipart(MultiPart::alternative_plain_html(text, html))
        .map_err(|e| NotifyError::BadRecipient(e.to_string()))
}
