//! The rule-file loader: any text through TOML parsing, rule compilation,
//! merging with the built-in rules, building the matcher and the rules'
//! self-test (`keywarden rules check`).
//!
//! Checks: nothing panics or hangs; a document that loads builds a
//! matcher; a loaded rule has an id and a regex that cannot match empty
//! text.
#![no_main]

use keywarden::matcher::{Matcher, self_test};
use keywarden::rules::{RuleOrigin, RuleSet, parse_document};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let origin = RuleOrigin::File("fuzz.toml".into());
    let Ok(doc) = parse_document("fuzz.toml", text, origin) else {
        return;
    };
    for rule in &doc.rules {
        assert!(!rule.id.is_empty());
        assert!(
            rule.regex().find(b"").is_none(),
            "rule {} matches empty text",
            rule.id
        );
        let _ = self_test(rule);
    }
    let matcher = Matcher::new(&doc.rules).expect("loaded rules build a matcher");
    let mut out = Vec::new();
    matcher.find_all(&mut matcher.new_cache(), text.as_bytes(), &mut out);
    if let Ok(set) = RuleSet::with_config(Some(doc)) {
        Matcher::new(&set.rules).expect("merged rules build a matcher");
    }
});
