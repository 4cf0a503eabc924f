//! Keys hidden in encodings: base64 (standard and URL-safe, padded or
//! not), percent-encoding and `\uXXXX`/`\xXX` escapes, nested up to a
//! depth. A layer between a source and its [`Sink`]: every unit goes on as
//! it is, and each encoded span that may hold a rule's keyword is decoded
//! and passed on as one more unit, placed at the encoded span.
//!
//! Decoding everything that looks like base64 would cost a pass over every
//! byte and a decode of every long token. Instead the rules' keywords are
//! encoded ahead of time: the characters of base64 that depend only on the
//! keyword (for each of the three alignments), and the keyword's percent and
//! escape forms, nested up to the depth, go into one Aho-Corasick automaton.
//! Only a span holding one of them is decoded — what a key's encoding must
//! contain. A keyword shorter than [`MIN_PATTERN`] characters once encoded
//! is not looked for at that depth (too many chance hits).

use super::{Position, Sink, SourceWarning, Unit};
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use std::ops::Range;

/// The deepest nesting `--max-decode-depth` accepts.
pub const MAX_DEPTH: usize = 3;
/// The default depth: base64 inside a base64 Helm value.
pub const DEFAULT_DEPTH: usize = 2;
/// Encoded keyword forms shorter than this are not looked for.
const MIN_PATTERN: usize = 6;
/// The longest encoded span decoded; a longer run of the alphabet is cut
/// to this much around the keyword.
const MAX_SPAN: usize = 1 << 20;

/// An encoding a span can be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Base64,
    Percent,
    Escape,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Base64 => "base64",
            Encoding::Percent => "percent",
            Encoding::Escape => "escape",
        }
    }
}

/// Where a decoded unit came from: the outermost encoded span.
#[derive(Debug, Clone, Copy)]
pub struct Decoded<'a> {
    /// Encodings from the outside in.
    pub chain: &'a [&'static str],
    /// The encoded span's first and last character in the input.
    pub at: Position,
    pub end: Position,
    /// The input's lines around the span (for inline allow markers).
    pub context: &'a [u8],
}

/// One encoded form of a keyword.
#[derive(Debug, Clone, Copy)]
struct Pattern {
    /// The outermost encoding.
    encoding: Encoding,
    /// For base64: where the pattern starts within its 4-character group.
    phase: usize,
}

/// The compiled encoded keywords of a rule set, and the depth.
#[derive(Debug, Clone)]
pub struct Decoder {
    automaton: Option<AhoCorasick>,
    patterns: Vec<Pattern>,
    depth: usize,
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The base64 characters of `bytes` placed after `pad` unknown bytes that
/// depend only on `bytes`: the longest such run, with its phase in its
/// 4-character group.
fn stable_base64(pad: usize, bytes: &[u8]) -> Option<(Vec<u8>, usize)> {
    // Bit i of the padded input is known when it lies within `bytes`.
    let bits = (pad + bytes.len()) * 8;
    let known = |bit: usize| bit >= pad * 8 && bit < bits;
    let bit_of = |bit: usize| {
        let byte = bytes[bit / 8 - pad];
        (byte >> (7 - bit % 8)) & 1
    };
    let mut best: Option<(Vec<u8>, usize)> = None;
    let mut run: Vec<u8> = Vec::new();
    let mut run_start = 0;
    for c in 0..bits.div_ceil(6) {
        let range = c * 6..c * 6 + 6;
        if range.clone().all(known) {
            if run.is_empty() {
                run_start = c;
            }
            let v = range.fold(0u8, |v, bit| (v << 1) | bit_of(bit));
            run.push(B64[usize::from(v)]);
        } else if !run.is_empty() {
            if best.as_ref().is_none_or(|(b, _)| run.len() > b.len()) {
                best = Some((std::mem::take(&mut run), run_start % 4));
            }
            run.clear();
        }
    }
    if !run.is_empty() && best.as_ref().is_none_or(|(b, _)| run.len() > b.len()) {
        best = Some((run, run_start % 4));
    }
    best
}

/// `%XX` for each byte of `bytes` matching `which`, in upper or lower hex.
fn percent_forms(bytes: &[u8], which: impl Fn(u8) -> bool) -> Vec<Vec<u8>> {
    [false, true]
        .into_iter()
        .map(|lower| {
            let mut out = Vec::new();
            for &b in bytes {
                if which(b) {
                    let hex = if lower {
                        format!("%{b:02x}")
                    } else {
                        format!("%{b:02X}")
                    };
                    out.extend_from_slice(hex.as_bytes());
                } else {
                    out.push(b);
                }
            }
            out
        })
        .collect()
}

/// `\uXXXX` and `\xXX` for each byte of `bytes` matching `which`.
fn escape_forms(bytes: &[u8], which: impl Fn(u8) -> bool) -> Vec<Vec<u8>> {
    let mut forms = Vec::new();
    for (prefix, width) in [("\\u", 4), ("\\x", 2)] {
        for lower in [false, true] {
            let mut out = Vec::new();
            for &b in bytes {
                if which(b) && b.is_ascii() {
                    let hex = match (width, lower) {
                        (4, true) => format!("{prefix}{b:04x}"),
                        (4, false) => format!("{prefix}{b:04X}"),
                        (_, true) => format!("{prefix}{b:02x}"),
                        (_, false) => format!("{prefix}{b:02X}"),
                    };
                    out.extend_from_slice(hex.as_bytes());
                } else {
                    out.push(b);
                }
            }
            forms.push(out);
        }
    }
    forms
}

impl Decoder {
    /// The encoded forms of `keywords`, nested up to `depth` (0: off).
    pub fn new(keywords: &[&str], depth: usize) -> Decoder {
        let depth = depth.min(MAX_DEPTH);
        let mut forms: Vec<(Vec<u8>, Pattern)> = Vec::new();
        // Each level's base64 forms, from which the next level's are made.
        let mut level: Vec<Vec<u8>> = keywords.iter().map(|k| k.as_bytes().to_vec()).collect();
        for d in 0..depth {
            let mut next = Vec::new();
            for text in &level {
                for pad in 0..3 {
                    let Some((stable, phase)) = stable_base64(pad, text) else {
                        continue;
                    };
                    let pattern = Pattern {
                        encoding: Encoding::Base64,
                        phase,
                    };
                    let url_safe: Vec<u8> = stable
                        .iter()
                        .map(|&c| match c {
                            b'+' => b'-',
                            b'/' => b'_',
                            c => c,
                        })
                        .collect();
                    if url_safe != stable {
                        forms.push((url_safe, pattern));
                    }
                    forms.push((stable.clone(), pattern));
                    next.push(stable);
                }
                if d == 0 {
                    let keyword = text.as_slice();
                    let punct = |b: u8| !b.is_ascii_alphanumeric();
                    for form in percent_forms(keyword, punct)
                        .into_iter()
                        .chain(percent_forms(keyword, |_| true))
                    {
                        let pattern = Pattern {
                            encoding: Encoding::Percent,
                            phase: 0,
                        };
                        forms.push((form, pattern));
                    }
                    for form in escape_forms(keyword, punct)
                        .into_iter()
                        .chain(escape_forms(keyword, |_| true))
                    {
                        let pattern = Pattern {
                            encoding: Encoding::Escape,
                            phase: 0,
                        };
                        forms.push((form, pattern));
                    }
                }
            }
            level = next;
        }
        forms
            .retain(|(f, _)| f.len() >= MIN_PATTERN && !keywords.iter().any(|k| k.as_bytes() == f));
        forms.sort_by(|a, b| a.0.cmp(&b.0));
        forms.dedup_by(|a, b| a.0 == b.0);
        let automaton = (!forms.is_empty())
            .then(|| {
                AhoCorasickBuilder::new()
                    .match_kind(MatchKind::LeftmostLongest)
                    .build(forms.iter().map(|(f, _)| f))
                    .ok()
            })
            .flatten();
        Decoder {
            automaton,
            patterns: forms.into_iter().map(|(_, p)| p).collect(),
            depth,
        }
    }

    /// A decoder that decodes nothing.
    pub fn off() -> Decoder {
        Decoder {
            automaton: None,
            patterns: Vec::new(),
            depth: 0,
        }
    }

    pub fn depth(&self) -> usize {
        self.depth
    }

    /// How many encoded keyword forms it looks for.
    pub fn forms(&self) -> usize {
        self.patterns.len()
    }

    /// Passes each decoded span of `unit` (and of what it decodes to, down
    /// to the depth) to `each`.
    fn expand(
        &self,
        unit: &Unit<'_>,
        level: usize,
        chain: &mut Vec<&'static str>,
        each: &mut dyn FnMut(&Unit<'_>),
    ) {
        let Some(ac) = &self.automaton else { return };
        if level >= self.depth {
            return;
        }
        let data = unit.data;
        let mut done_until = 0usize;
        let mut cursor = (0usize, unit.start);
        for hit in ac.find_iter(data) {
            let p = hit.start();
            if p < done_until || !(level > 0 || unit.keep.contains(&p)) {
                continue;
            }
            let pattern = self.patterns[hit.pattern().as_usize()];
            let (span, decoded) = match pattern.encoding {
                Encoding::Base64 => base64_span(data, p, hit.end(), pattern.phase),
                Encoding::Percent => percent_span(data, p),
                Encoding::Escape => escape_span(data, p),
            };
            done_until = span.end;
            if decoded.is_empty() {
                continue;
            }
            chain.push(pattern.encoding.as_str());
            let place = match unit.decoded {
                // Nested: the outermost span stays the place.
                Some(outer) => outer,
                None => {
                    let at = cursor.1.advance(&data[cursor.0..span.start]);
                    cursor = (span.start, at);
                    let last = span.end.saturating_sub(1).max(span.start);
                    let end = at.advance(&data[span.start..last]);
                    let line_start =
                        memchr::memrchr(b'\n', &data[..span.start]).map_or(0, |i| i + 1);
                    let line_end = memchr::memchr(b'\n', &data[span.end..])
                        .map_or(data.len(), |i| span.end + i);
                    Decoded {
                        chain: &[],
                        at,
                        end,
                        context: &data[line_start..line_end],
                    }
                }
            };
            self.pass_on(unit, &decoded, place, level, chain, each);
            chain.pop();
        }
    }

    fn pass_on(
        &self,
        unit: &Unit<'_>,
        decoded: &[u8],
        place: Decoded<'_>,
        level: usize,
        chain: &mut Vec<&'static str>,
        each: &mut dyn FnMut(&Unit<'_>),
    ) {
        let owned_chain = chain.clone();
        let place = Decoded {
            chain: &owned_chain,
            ..place
        };
        let next = Unit {
            origin: unit.origin,
            data: decoded,
            keep: 0..decoded.len(),
            start: place.at,
            binary: unit.binary,
            decoded: Some(place),
        };
        each(&next);
        self.expand(&next, level + 1, chain, each);
    }
}

/// Whether `b` may be in a base64 token (either alphabet, no padding).
fn is_base64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_')
}

fn base64_value(b: u8) -> Option<u8> {
    match b {
        b'A'..=b'Z' => Some(b - b'A'),
        b'a'..=b'z' => Some(b - b'a' + 26),
        b'0'..=b'9' => Some(b - b'0' + 52),
        b'+' | b'-' => Some(62),
        b'/' | b'_' => Some(63),
        _ => None,
    }
}

/// The base64 token around the hit at `hit_start..hit_end` (group phase
/// `phase` at the hit), and its bytes decoded from the first whole group.
fn base64_span(
    data: &[u8],
    hit_start: usize,
    hit_end: usize,
    phase: usize,
) -> (Range<usize>, Vec<u8>) {
    let floor = hit_start.saturating_sub(MAX_SPAN / 2);
    let mut start = hit_start;
    while start > floor && is_base64(data[start - 1]) {
        start -= 1;
    }
    let ceiling = (hit_end + MAX_SPAN / 2).min(data.len());
    let mut end = hit_end;
    while end < ceiling && is_base64(data[end]) {
        end += 1;
    }
    let span_end = {
        let mut e = end;
        while e < data.len() && e < end + 2 && data[e] == b'=' {
            e += 1;
        }
        e
    };
    // Groups start where the hit's group does, modulo 4: decode from the
    // first group boundary in the token.
    let group = (hit_start % 4 + 4 - phase) % 4;
    let first = (start + (group + 4 - start % 4) % 4).min(end);
    let mut out = Vec::with_capacity((end - first) / 4 * 3 + 3);
    let mut acc = 0u32;
    let mut nbits = 0;
    for &c in &data[first..end] {
        let Some(v) = base64_value(c) else { break };
        acc = (acc << 6) | u32::from(v);
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push((acc >> nbits) as u8);
            acc &= (1 << nbits) - 1;
        }
    }
    (start..span_end, out)
}

/// Whether `b` may be in a percent-encoded key's text.
fn is_percent_text(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'%' | b'-' | b'_' | b'.' | b'~')
}

/// The percent-encoded text from `start` on, decoded.
fn percent_span(data: &[u8], start: usize) -> (Range<usize>, Vec<u8>) {
    let ceiling = (start + MAX_SPAN).min(data.len());
    let mut end = start;
    while end < ceiling && is_percent_text(data[end]) {
        end += 1;
    }
    let text = &data[start..end];
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i] == b'%'
            && let Some(b) = text.get(i + 1..i + 3).and_then(hex_byte)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(text[i]);
        i += 1;
    }
    (start..end, out)
}

fn hex_byte(two: &[u8]) -> Option<u8> {
    let s = std::str::from_utf8(two).ok()?;
    u8::from_str_radix(s, 16).ok()
}

/// The escaped text from `start` on (`\uXXXX`, `\xXX` and plain
/// characters of a key), decoded.
fn escape_span(data: &[u8], start: usize) -> (Range<usize>, Vec<u8>) {
    let ceiling = (start + MAX_SPAN).min(data.len());
    let mut out = Vec::new();
    let mut i = start;
    while i < ceiling {
        let b = data[i];
        if b == b'\\' {
            let (width, skip) = match data.get(i + 1) {
                Some(b'u') => (4, 2),
                Some(b'x') => (2, 2),
                _ => break,
            };
            let Some(code) = data
                .get(i + skip..i + skip + width)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u32::from_str_radix(h, 16).ok())
            else {
                break;
            };
            match char::from_u32(code) {
                Some(c) => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                None => break,
            }
            i += skip + width;
        } else if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_') {
            out.push(b);
            i += 1;
        } else {
            break;
        }
    }
    (start..i, out)
}

/// A sink that also passes on what encoded spans decode to.
pub struct Decoding<'a, S: Sink> {
    pub inner: &'a S,
    pub decoder: &'a Decoder,
}

impl<S: Sink> Sink for Decoding<'_, S> {
    type Worker = S::Worker;

    fn new_worker(&self) -> S::Worker {
        self.inner.new_worker()
    }

    fn unit(&self, worker: &mut S::Worker, unit: &Unit<'_>) {
        self.inner.unit(worker, unit);
        let mut chain = Vec::new();
        self.decoder.expand(unit, 0, &mut chain, &mut |decoded| {
            self.inner.unit(worker, decoded)
        });
    }

    fn warning(&self, warning: SourceWarning) {
        self.inner.warning(warning);
    }

    fn input_done(&self, worker: &mut S::Worker, bytes: u64) {
        self.inner.input_done(worker, bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in data.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..=chunk.len() {
                out.push(B64[((v >> (18 - 6 * i)) & 63) as usize]);
            }
        }
        out
    }

    #[test]
    fn the_stable_base64_of_a_keyword_is_in_its_encoding_at_every_alignment() {
        let keyword = b"sk-or-v";
        for pad in 0..3 {
            let (stable, phase) = stable_base64(pad, keyword).unwrap();
            assert!(
                stable.len() >= 8,
                "{pad}: {}",
                String::from_utf8_lossy(&stable)
            );
            for prefix in [&b"x"[..], b"ab", b"", b"user:"] {
                if prefix.len() % 3 != pad {
                    continue;
                }
                let text = [prefix, keyword, b"1-00ff"].concat();
                let encoded = b64(&text);
                let at = memchr::memmem::find(&encoded, &stable)
                    .unwrap_or_else(|| panic!("pad {pad}, prefix {prefix:?}"));
                assert_eq!(at % 4, phase, "pad {pad}");
            }
        }
    }

    #[test]
    fn decoding_undoes_each_encoding() {
        let text = b"x sk-or-v1-00 y";
        let encoded = b64(text);
        let (span, out) = base64_span(&encoded, 4, 8, 0);
        assert_eq!(span, 0..encoded.len());
        assert_eq!(out, text);
        let (_, out) = percent_span(b"%73%6B%2Dor%2dv1 rest", 0);
        assert_eq!(out, b"sk-or-v1");
        let (_, out) = escape_span(b"sk\\u002dor\\x2Dv1\\uD800", 0);
        assert_eq!(out, b"sk-or-v1");
    }

    #[test]
    fn depth_zero_looks_for_nothing_and_depth_is_capped() {
        assert_eq!(Decoder::new(&["sk-or-v"], 0).forms(), 0);
        let one = Decoder::new(&["sk-or-v"], 1).forms();
        let two = Decoder::new(&["sk-or-v"], 2).forms();
        assert!(one > 0 && two > one, "{one} {two}");
        assert_eq!(Decoder::new(&["sk-or-v"], 99).depth(), MAX_DEPTH);
    }
}
