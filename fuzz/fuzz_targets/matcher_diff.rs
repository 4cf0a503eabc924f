//! Differential: the keyword-prefiltered matcher against every rule's
//! regex over the whole buffer, for the built-in rules and for a mix of
//! windowed, gated, keyword-less and entropy rules; and chunked scanning
//! (in memory and streamed, with tiny chunks) against one whole search.
#![no_main]

use keywarden::matcher::{MatchCache, Matcher, RawMatch};
use keywarden::rules::{RuleOrigin, RuleSet, parse_document};
use keywarden::sources::{Chunk, Chunker};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const MIXED: &str = r#"
[[rules]]
id = "window"
description = "bounded, keyword inside"
keywords = ["sk-or"]
regex = 'sk-or-v1-[0-9a-f]{8}'
[[rules]]
id = "boundary"
description = "look-behind boundary, shared keyword"
keywords = ["-v1-"]
regex = '(?-u:\b)[a-z]{1,8}-v1-([0-9a-f]{4,40})'
[[rules]]
id = "gated"
description = "unbounded"
keywords = ["pw="]
regex = 'pw=([a-z0-9]+)'
[[rules]]
id = "always"
description = "no keyword"
regex = 'AKIA[0-9A-Z]{16}'
[[rules]]
id = "entropy"
description = "entropy floor"
keywords = ["tok_"]
regex = 'tok_([a-z0-9]{12})'
entropy = 3.0
"#;

fn matchers() -> &'static [Matcher; 2] {
    static M: OnceLock<[Matcher; 2]> = OnceLock::new();
    M.get_or_init(|| {
        let builtin = RuleSet::builtin().expect("built-in rules");
        let mixed = parse_document("mixed.toml", MIXED, RuleOrigin::File("mixed.toml".into()))
            .expect("mixed rules");
        [
            Matcher::new(&builtin.rules).expect("matcher"),
            Matcher::new(&mixed.rules).expect("matcher"),
        ]
    })
}

/// Matches in one chunk that belong to it, placed in the whole input.
fn kept(m: &Matcher, cache: &mut MatchCache, c: &Chunk<'_>, out: &mut Vec<RawMatch>) {
    let mut found = Vec::new();
    m.find_all(cache, c.data, &mut found);
    let at = c.start.offset as usize;
    out.extend(
        found
            .into_iter()
            .filter(|f| c.keep.contains(&f.span.start))
            .map(|f| RawMatch {
                secret: f.secret.start + at..f.secret.end + at,
                rule: f.rule,
                span: f.span.start + at..f.span.end + at,
            }),
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&size, hay)) = data.split_first() else {
        return;
    };
    for (i, m) in matchers().iter().enumerate() {
        let mut cache = m.new_cache();
        let (mut fast, mut whole) = (Vec::new(), Vec::new());
        m.find_all(&mut cache, hay, &mut fast);
        m.find_all_unfiltered(&mut cache, hay, &mut whole);
        assert_eq!(
            fast, whole,
            "prefiltered != whole-buffer regex (matcher {i})"
        );

        // Chunked as the scanner does: a match belongs to the chunk whose
        // `keep` holds its start. Only for rules with a bounded length;
        // the mixed set has an unbounded rule, whose chunks overlap by
        // 64 KiB and so are never split by inputs this small.
        let chunker = Chunker {
            size: 1 + size as usize % 97,
            overlap: m.overlap(),
        };
        let mut chunked = Vec::new();
        chunker.slices(hay, |c| kept(m, &mut cache, &c, &mut chunked));
        assert_eq!(chunked, whole, "chunked != whole (matcher {i})");

        let mut streamed = Vec::new();
        chunker
            .stream(hay, |c, _binary| kept(m, &mut cache, &c, &mut streamed))
            .expect("reading a slice cannot fail");
        assert_eq!(streamed, whole, "streamed != whole (matcher {i})");
    }
});
