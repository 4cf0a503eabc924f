//! Rule self-tests: each rule's `examples` must be found and its
//! `negative_examples` must not, through the same prefiltered matcher a
//! scan uses, with the rule's own allowlist applied.

use super::{Matcher, MatcherError};
use crate::rules::Rule;
use std::fmt;

/// One way a rule failed its own examples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelfTestProblem {
    /// An example was not reported.
    Missed { index: usize, example: String },
    /// A negative example was reported.
    FalsePositive { index: usize, example: String },
    /// The regex matches an example, but no keyword occurs in the match:
    /// the prefilter would hide such matches in a scan.
    KeywordNotInMatch { index: usize, example: String },
    /// The rule has no examples at all.
    NoExamples,
}

impl fmt::Display for SelfTestProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SelfTestProblem::Missed { index, example } => {
                write!(
                    f,
                    "example #{} is not found: {}",
                    index + 1,
                    abbreviate(example)
                )
            }
            SelfTestProblem::FalsePositive { index, example } => write!(
                f,
                "negative example #{} is reported: {}",
                index + 1,
                abbreviate(example)
            ),
            SelfTestProblem::KeywordNotInMatch { index, example } => write!(
                f,
                "example #{} matches the regex but none of the keywords occurs in the match \
                 (keywords are case-sensitive): {}",
                index + 1,
                abbreviate(example)
            ),
            SelfTestProblem::NoExamples => f.write_str("rule has no examples"),
        }
    }
}

fn abbreviate(s: &str) -> String {
    const MAX: usize = 80;
    let one_line = s.replace('\n', "\\n");
    if one_line.chars().count() <= MAX {
        one_line
    } else {
        format!("{}…", one_line.chars().take(MAX).collect::<String>())
    }
}

/// Runs a rule's examples and negative examples; an empty result means the
/// rule passed.
pub fn self_test(rule: &Rule) -> Result<Vec<SelfTestProblem>, MatcherError> {
    let matcher = Matcher::new(std::slice::from_ref(rule))?;
    let mut cache = matcher.new_cache();
    let mut problems = Vec::new();
    if rule.examples.is_empty() {
        problems.push(SelfTestProblem::NoExamples);
    }
    let reported = |cache: &mut _, text: &str| {
        let mut found = Vec::new();
        matcher.find_all(cache, text.as_bytes(), &mut found);
        found.iter().any(|m| {
            !rule
                .allowlist
                .allows_secret(&text.as_bytes()[m.secret.clone()])
        })
    };
    for (index, example) in rule.examples.iter().enumerate() {
        let mut plain = Vec::new();
        matcher.find_all_unfiltered(&mut cache, example.as_bytes(), &mut plain);
        let keyword_missing = !rule.keywords.is_empty()
            && plain.iter().any(|m| {
                let text = &example.as_bytes()[m.span.clone()];
                !rule
                    .keywords
                    .iter()
                    .any(|k| memchr::memmem::find(text, k.as_bytes()).is_some())
            });
        let example = example.clone();
        if keyword_missing {
            problems.push(SelfTestProblem::KeywordNotInMatch { index, example });
        } else if !reported(&mut cache, &example) {
            problems.push(SelfTestProblem::Missed { index, example });
        }
    }
    for (index, example) in rule.negative_examples.iter().enumerate() {
        if reported(&mut cache, example) {
            problems.push(SelfTestProblem::FalsePositive {
                index,
                example: example.clone(),
            });
        }
    }
    Ok(problems)
}
