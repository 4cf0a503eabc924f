//! Showing text that came from outside — a file name, a commit message, a
//! key's name, a URL GitHub relayed — where a person reads it: a terminal,
//! a table, a log line, an email. Such text is data: it must not break a
//! line, restyle a screen or reorder what is shown. Both halves of
//! keywarden use this module; it knows nothing about either.

use std::borrow::Cow;

/// Whether `c` could break a line, drive a terminal, reorder text or hide
/// in it: control characters (C0, DEL, C1), the Unicode line and paragraph
/// separators, bidi marks, embeddings, overrides and isolates, and the
/// invisible format characters (zero-width spaces and joiners, word
/// joiner, byte-order mark, soft hyphen, interlinear annotation).
pub fn is_hostile(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00ad}'
                | '\u{061c}'
                | '\u{180e}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{206f}'
                | '\u{feff}'
                | '\u{fff9}'..='\u{fffb}'
        )
}

/// `s` with every [hostile](is_hostile) character written as a Rust
/// escape (`\n`, `\u{1b}`, `\u{202e}`); other text is kept as it is.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_hostile) {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !is_hostile(c) {
            out.push(c);
        } else if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.extend(c.escape_unicode());
        }
    }
    out.into()
}

/// [`printable`], then cut to at most `max_chars` characters (counting the
/// escapes), ending in `…` when cut. Never splits a character or an escape.
pub fn one_line(s: &str, max_chars: usize) -> String {
    let shown = printable(s);
    if shown.chars().count() <= max_chars {
        return shown.into_owned();
    }
    let mut out = String::new();
    let mut used = 0;
    let budget = max_chars.saturating_sub(1);
    // Escape units whole: `\u{1b}` is one unit of six characters.
    for c in s.chars() {
        let unit: Cow<'_, str> = if is_hostile(c) {
            printable(c.encode_utf8(&mut [0; 4])).into_owned().into()
        } else {
            c.to_string().into()
        };
        let n = unit.chars().count();
        if used + n > budget {
            break;
        }
        out.push_str(&unit);
        used += n;
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_control_characters_only() {
        assert_eq!(printable("a/b c.txt"), "a/b c.txt");
        assert_eq!(
            printable("new\nline\t\u{1b}[31m.txt"),
            "new\\nline\\t\\u{1b}[31m.txt"
        );
        assert_eq!(printable("ключ\u{fffd}.txt"), "ключ\u{fffd}.txt");
        assert_eq!(printable("a\u{202e}txt.exe"), "a\\u{202e}txt.exe");
        assert_eq!(printable("a\u{2028}b\u{85}c"), "a\\u{2028}b\\u{85}c");
        assert_eq!(printable("x\u{200f}y\u{feff}"), "x\\u{200f}y\\u{feff}");
    }

    #[test]
    fn one_line_caps_length_without_splitting_characters_or_escapes() {
        assert_eq!(one_line("short", 10), "short");
        assert_eq!(one_line("ééééé", 5), "ééééé");
        assert_eq!(one_line("éééééé", 5), "éééé…");
        assert_eq!(one_line("ab\ncd", 4), "ab…");
        assert_eq!(one_line("ab\ncd", 5), "ab\\n…");
        assert_eq!(one_line("a\u{1b}bcdefgh", 8), "a\\u{1b}…");
        assert!(!one_line(&"\n".repeat(1000), 50).contains('\n'));
        assert!(one_line(&"x".repeat(1000), 50).chars().count() <= 50);
    }
}
