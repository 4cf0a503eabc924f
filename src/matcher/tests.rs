use super::*;
use crate::rules::{RuleOrigin, RuleSet, parse_document};
use proptest::prelude::*;

fn rules_from(text: &str) -> Vec<Rule> {
    parse_document("t.toml", text, RuleOrigin::File("t.toml".into()))
        .unwrap()
        .rules
}

fn builtin() -> Matcher {
    Matcher::new(&RuleSet::builtin().unwrap().rules).unwrap()
}

fn secrets(m: &Matcher, hay: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    m.find_all(&mut m.new_cache(), hay, &mut out);
    out.iter()
        .map(|r| String::from_utf8_lossy(&hay[r.secret.clone()]).into_owned())
        .collect()
}

const KEY: &str = "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";

#[test]
fn every_builtin_rule_passes_its_own_examples() {
    for rule in RuleSet::builtin().unwrap().rules {
        let problems = self_test(&rule).unwrap();
        assert!(problems.is_empty(), "rule {}: {problems:?}", rule.id);
    }
}

#[test]
fn finds_key_in_invalid_utf8_and_binary_data() {
    let mut hay = vec![0xff, 0xfe, 0x00, b' '];
    hay.extend_from_slice(KEY.as_bytes());
    hay.extend_from_slice(&[0x80, 0x00, 0xc3]);
    assert_eq!(secrets(&builtin(), &hay), [KEY]);
}

#[test]
fn secret_is_the_capture_group_not_the_boundary() {
    let m = builtin();
    let hay = format!("x=\"{KEY}\"");
    let mut out = Vec::new();
    m.find_all(&mut m.new_cache(), hay.as_bytes(), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].secret, 3..3 + KEY.len());
}

#[test]
fn entropy_floor_drops_low_entropy_secrets() {
    let rules = rules_from(
        "[[rules]]\nid='t'\ndescription='t'\nkeywords=['tok_']\nregex='tok_([a-z]{12})'\nentropy=3.0\n",
    );
    let m = Matcher::new(&rules).unwrap();
    assert!(secrets(&m, b"tok_aaaaaaaaaaaa").is_empty());
    assert_eq!(secrets(&m, b"tok_abcdefghijkl"), ["abcdefghijkl"]);
}

#[test]
fn rules_without_keywords_and_unbounded_rules_are_searched_whole() {
    let rules = rules_from(
        "[[rules]]\nid='a'\ndescription='a'\nregex='AKIA[0-9A-Z]{16}'\n\
         [[rules]]\nid='b'\ndescription='b'\nkeywords=['pw=']\nregex='pw=([a-z]+)'\n",
    );
    let m = Matcher::new(&rules).unwrap();
    assert_eq!(m.overlap(), UNBOUNDED_OVERLAP);
    let hay = format!("AKIAIOSFODNN7EXAMPLE pw={}", "z".repeat(100_000));
    let got = secrets(&m, hay.as_bytes());
    assert_eq!(got.len(), 2);
    assert_eq!(got[0], "AKIAIOSFODNN7EXAMPLE");
    assert_eq!(got[1].len(), 100_000);
}

#[test]
fn two_rules_sharing_a_keyword_both_report() {
    let rules = rules_from(
        "[[rules]]\nid='a'\ndescription='a'\nkeywords=['k_']\nregex='k_[0-9]{4}'\n\
         [[rules]]\nid='b'\ndescription='b'\nkeywords=['k_', 'k_1']\nregex='k_1[0-9]{3}'\n",
    );
    let m = Matcher::new(&rules).unwrap();
    let mut out = Vec::new();
    m.find_all(&mut m.new_cache(), b"k_1234 k_9999", &mut out);
    let rules_hit: Vec<_> = out.iter().map(|r| (r.rule, r.secret.start)).collect();
    assert_eq!(rules_hit, [(0, 0), (1, 0), (0, 7)]);
}

/// Random haystacks: noise bytes (biased towards the characters keys are
/// made of), planted keys, near-misses, and keys glued to word characters.
fn haystack() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        3 => proptest::collection::vec(
            prop_oneof![Just(b'a'), Just(b'0'), Just(b'-'), Just(b'\n'), Just(b' '), any::<u8>()],
            0..40
        ),
        2 => "[0-9a-f]{60,70}".prop_map(|h| format!("sk-or-v1-{h}").into_bytes()),
        1 => "[0-9a-fA-F]{64}".prop_map(|h| format!("sk-or-v1-{h}").into_bytes()),
        1 => "[0-9]{1,4}-[0-9a-f]{64}".prop_map(|h| format!("sk-or-v{h}").into_bytes()),
        1 => Just(b"sk-or-v".to_vec()),
        1 => "[a-z_]".prop_map(|c| c.into_bytes()),
    ];
    proptest::collection::vec(piece, 0..30).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn prefiltered_matches_equal_whole_buffer_regex(hay in haystack()) {
        let m = builtin();
        let mut cache = m.new_cache();
        let (mut fast, mut slow) = (Vec::new(), Vec::new());
        m.find_all(&mut cache, &hay, &mut fast);
        m.find_all_unfiltered(&mut cache, &hay, &mut slow);
        prop_assert_eq!(fast, slow);
    }

    #[test]
    fn prefiltered_matches_equal_whole_buffer_regex_for_mixed_rules(hay in haystack()) {
        let rules = rules_from(
            "[[rules]]\nid='a'\ndescription='a'\nkeywords=['sk-or']\nregex='sk-or-v1-[0-9a-f]{8}'\n\
             [[rules]]\nid='b'\ndescription='b'\nkeywords=['-v1-']\nregex='(?-u:\\b)[a-z]+-v1-([0-9a-f]+)'\n\
             [[rules]]\nid='c'\ndescription='c'\nkeywords=['aa', 'a0']\nregex='a[a0]{2,5}'\n",
        );
        let m = Matcher::new(&rules).unwrap();
        let mut cache = m.new_cache();
        let (mut fast, mut slow) = (Vec::new(), Vec::new());
        m.find_all(&mut cache, &hay, &mut fast);
        m.find_all_unfiltered(&mut cache, &hay, &mut slow);
        prop_assert_eq!(fast, slow);
    }
}
