//! Matching: all rules' keywords in one Aho-Corasick automaton, and each
//! rule's regex run only around its keyword hits.
//!
//! The matcher turns bytes into raw matches (rule, byte ranges). It never
//! reads files, knows nothing of paths or git, and never formats output.
//!
//! Exactness: a rule's regex must only match text containing one of its
//! keywords (`rules check` verifies this on the rule's examples). When the
//! regex has a maximum match length `L`, every match lies within `L` bytes
//! of a keyword hit, so searching the merged windows around the hits — with
//! the whole buffer visible to look-around such as `\b` — reports exactly
//! the matches a whole-buffer search would. Unbounded regexes are run over
//! the whole buffer when one of their keywords occurs, and rules with no
//! keywords always are.

mod entropy;
mod selftest;

pub use entropy::shannon_entropy;
pub use selftest::{SelfTestProblem, self_test};

use crate::rules::Rule;
use aho_corasick::{AhoCorasick, MatchKind};
use regex_automata::util::captures::Captures;
use regex_automata::{Anchored, Input, meta};
use std::ops::Range;
use thiserror::Error;

/// Context kept around a chunk boundary for rules whose regex has no
/// upper bound on its length.
const UNBOUNDED_OVERLAP: usize = 64 * 1024;

/// Errors building a matcher.
#[derive(Debug, Error)]
pub enum MatcherError {
    #[error("cannot build the keyword automaton: {0}")]
    Keywords(#[from] aho_corasick::BuildError),
}

/// One match of one rule in a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMatch {
    /// Byte range of the secret (the rule's secret group, else the match).
    pub secret: Range<usize>,
    /// Index of the rule in [`Matcher::rules`].
    pub rule: usize,
    /// Byte range of the whole regex match.
    pub span: Range<usize>,
}

impl RawMatch {
    fn order_key(&self) -> (usize, usize, usize, usize, usize) {
        (
            self.secret.start,
            self.secret.end,
            self.rule,
            self.span.start,
            self.span.end,
        )
    }
}

impl Ord for RawMatch {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.order_key().cmp(&other.order_key())
    }
}

impl PartialOrd for RawMatch {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Debug, Clone, Copy)]
enum Plan {
    /// Search only within this many bytes of a keyword hit.
    Window(usize),
    /// Search the whole buffer if a keyword occurs in it.
    Gated,
    /// No keywords: always search the whole buffer.
    Always,
}

/// Compiled rules ready to search byte buffers. Cheap to share across
/// threads; each thread brings its own [`MatchCache`].
#[derive(Debug, Clone)]
pub struct Matcher {
    rules: Vec<Rule>,
    plans: Vec<Plan>,
    keywords: Option<AhoCorasick>,
    /// For each distinct keyword, the rules that list it.
    keyword_rules: Vec<Vec<usize>>,
}

/// Per-thread scratch space for [`Matcher::find_all`].
#[derive(Debug)]
pub struct MatchCache {
    regex: Vec<meta::Cache>,
    captures: Vec<Captures>,
    windows: Vec<(usize, usize, usize)>,
    gated: Vec<bool>,
}

impl Matcher {
    /// Compiles the keyword automaton for `rules`.
    pub fn new(rules: &[Rule]) -> Result<Self, MatcherError> {
        let mut distinct: Vec<String> = Vec::new();
        let mut keyword_rules: Vec<Vec<usize>> = Vec::new();
        let mut plans = Vec::with_capacity(rules.len());
        for (i, rule) in rules.iter().enumerate() {
            plans.push(match (rule.keywords.is_empty(), rule.max_len()) {
                (true, _) => Plan::Always,
                (false, Some(len)) => Plan::Window(len),
                (false, None) => Plan::Gated,
            });
            for kw in &rule.keywords {
                match distinct.iter().position(|k| k == kw) {
                    Some(p) if !keyword_rules[p].contains(&i) => keyword_rules[p].push(i),
                    Some(_) => {}
                    None => {
                        distinct.push(kw.clone());
                        keyword_rules.push(vec![i]);
                    }
                }
            }
        }
        let keywords = if distinct.is_empty() {
            None
        } else {
            Some(
                AhoCorasick::builder()
                    .match_kind(MatchKind::Standard)
                    .build(&distinct)?,
            )
        };
        Ok(Matcher {
            rules: rules.to_vec(),
            plans,
            keywords,
            keyword_rules,
        })
    }

    /// The rules, indexed as in [`RawMatch::rule`].
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Fresh scratch space for one thread.
    pub fn new_cache(&self) -> MatchCache {
        MatchCache {
            regex: self
                .rules
                .iter()
                .map(|r| r.regex().create_cache())
                .collect(),
            captures: self
                .rules
                .iter()
                .map(|r| r.regex().create_captures())
                .collect(),
            windows: Vec::new(),
            gated: vec![false; self.rules.len()],
        }
    }

    /// Bytes of context a chunk of a larger input must share with its
    /// neighbours so that no match is cut at a boundary.
    pub fn overlap(&self) -> usize {
        self.plans
            .iter()
            .map(|p| match p {
                Plan::Window(len) => *len,
                Plan::Gated | Plan::Always => UNBOUNDED_OVERLAP,
            })
            .max()
            .unwrap_or(0)
    }

    /// Appends every match in `hay` to `out`, ordered by secret position
    /// then rule. Matches below a rule's entropy floor are dropped.
    pub fn find_all(&self, cache: &mut MatchCache, hay: &[u8], out: &mut Vec<RawMatch>) {
        let first = out.len();
        cache.windows.clear();
        cache.gated.iter_mut().for_each(|g| *g = false);
        if let Some(ac) = &self.keywords {
            for hit in ac.find_overlapping_iter(hay) {
                for &rule in &self.keyword_rules[hit.pattern().as_usize()] {
                    match self.plans[rule] {
                        Plan::Window(len) => cache.windows.push((
                            rule,
                            hit.end().saturating_sub(len).min(hit.start()),
                            (hit.start() + len).max(hit.end()).min(hay.len()),
                        )),
                        Plan::Gated => cache.gated[rule] = true,
                        Plan::Always => {}
                    }
                }
            }
        }
        let mut windows = std::mem::take(&mut cache.windows);
        windows.sort_unstable();
        let mut i = 0;
        while i < windows.len() {
            let (rule, start, mut end) = windows[i];
            i += 1;
            while i < windows.len() && windows[i].0 == rule && windows[i].1 <= end {
                end = end.max(windows[i].2);
                i += 1;
            }
            self.search_range(cache, rule, hay, start..end, out);
        }
        cache.windows = windows;
        for rule in 0..self.rules.len() {
            let whole = match self.plans[rule] {
                Plan::Always => true,
                Plan::Gated => cache.gated[rule],
                Plan::Window(_) => false,
            };
            if whole {
                self.search_range(cache, rule, hay, 0..hay.len(), out);
            }
        }
        out[first..].sort_unstable();
    }

    /// The reference: every rule's regex over the whole buffer, no
    /// prefilter. Reports exactly what [`Matcher::find_all`] reports for
    /// rules whose matches contain a keyword.
    pub fn find_all_unfiltered(&self, cache: &mut MatchCache, hay: &[u8], out: &mut Vec<RawMatch>) {
        let first = out.len();
        for rule in 0..self.rules.len() {
            self.search_range(cache, rule, hay, 0..hay.len(), out);
        }
        out[first..].sort_unstable();
    }

    fn search_range(
        &self,
        cache: &mut MatchCache,
        rule_idx: usize,
        hay: &[u8],
        range: Range<usize>,
        out: &mut Vec<RawMatch>,
    ) {
        let rule = &self.rules[rule_idx];
        let regex = rule.regex();
        let mut at = range.start;
        while at < range.end {
            let input = Input::new(hay).range(at..range.end);
            let Some(m) = regex.search_with(&mut cache.regex[rule_idx], &input) else {
                break;
            };
            // Rules cannot match the empty string, but never loop forever.
            at = m.end().max(at + 1);
            let secret = self.secret_range(cache, rule_idx, hay, m.range());
            if let Some(min) = rule.entropy
                && shannon_entropy(&hay[secret.clone()]) < min
            {
                continue;
            }
            out.push(RawMatch {
                secret,
                rule: rule_idx,
                span: m.range(),
            });
        }
    }

    fn secret_range(
        &self,
        cache: &mut MatchCache,
        rule_idx: usize,
        hay: &[u8],
        span: Range<usize>,
    ) -> Range<usize> {
        let rule = &self.rules[rule_idx];
        let group = rule.secret_group();
        if group == 0 {
            return span;
        }
        let caps = &mut cache.captures[rule_idx];
        let input = Input::new(hay).span(span.clone()).anchored(Anchored::Yes);
        rule.regex()
            .search_captures_with(&mut cache.regex[rule_idx], &input, caps);
        caps.get_group(group).map_or(span, |s| s.range())
    }
}

#[cfg(test)]
mod tests;
