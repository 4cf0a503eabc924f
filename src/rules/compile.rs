//! Turns rule specs into checked rules: every check that can name a line.

use super::error::RuleError;
use super::model::{Allowlist, Rule, RuleOrigin, Severity, Verifier};
use super::spec::{AllowlistSpec, RuleSpec, VerifySpec};
use globset::{GlobBuilder, GlobSetBuilder};
use regex_automata::meta;
use regex_automata::util::syntax;
use toml::Spanned;

/// The source text a spec came from, so errors can point into it.
pub(crate) struct Source<'a> {
    pub name: &'a str,
    pub text: &'a str,
    pub origin: &'a RuleOrigin,
}

impl Source<'_> {
    fn error(&self, span: std::ops::Range<usize>, reason: impl Into<String>) -> RuleError {
        RuleError::at(self.name, self.text, span, reason)
    }
}

/// Validates one rule spec and compiles its regex.
pub(crate) fn compile_rule(spec: Spanned<RuleSpec>, src: &Source<'_>) -> Result<Rule, RuleError> {
    let rule_span = spec.span();
    let spec = spec.into_inner();
    let id = spec.id.get_ref().trim().to_string();
    if id.is_empty()
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(src.error(
            spec.id.span(),
            format!(
                "rule id '{id}' must be non-empty and use only letters, digits, '-', '_' and '.'"
            ),
        ));
    }
    let ctx = |reason: String| format!("rule '{id}': {reason}");
    if spec.description.trim().is_empty() {
        return Err(src.error(rule_span, ctx("description is empty".into())));
    }

    let keywords = match spec.keywords {
        Some(k) if k.get_ref().iter().any(|k| k.is_empty()) => {
            return Err(src.error(k.span(), ctx("a keyword is the empty string".into())));
        }
        Some(k) => k.into_inner(),
        None => Vec::new(),
    };

    let (regex, secret_group, max_len) = compile_regex(spec.regex.get_ref())
        .map_err(|reason| src.error(spec.regex.span(), ctx(reason)))?;

    let entropy = match spec.entropy {
        Some(e) if !(0.0..=8.0).contains(e.get_ref()) => {
            return Err(src.error(
                e.span(),
                ctx(format!(
                    "entropy {} is outside 0.0..=8.0 bits per byte",
                    e.get_ref()
                )),
            ));
        }
        e => e.map(|e| e.into_inner()),
    };

    let severity = match spec.severity {
        Some(s) => s
            .get_ref()
            .parse::<Severity>()
            .map_err(|reason| src.error(s.span(), ctx(reason)))?,
        None => Severity::High,
    };

    let allowlist = match spec.allowlist {
        Some(a) => compile_allowlist(a.into_inner(), src).map_err(|e| prefix_rule(e, &id))?,
        None => Allowlist::default(),
    };

    let verify = match spec.verify {
        Some(v) => Some(compile_verifier(v, src).map_err(|e| prefix_rule(e, &id))?),
        None => None,
    };

    Ok(Rule {
        id,
        description: spec.description.trim().to_string(),
        severity,
        keywords,
        pattern: spec.regex.into_inner(),
        regex,
        secret_group,
        max_len,
        entropy,
        allowlist,
        examples: spec.examples,
        negative_examples: spec.negative_examples,
        verify,
        origin: src.origin.clone(),
    })
}

/// Checks a `[rules.verify]` table: an http(s) base, a URL of the form
/// `{base}/path` without the secret, and `Name: value` headers that carry
/// `{secret}`.
fn compile_verifier(spec: Spanned<VerifySpec>, src: &Source<'_>) -> Result<Verifier, RuleError> {
    let span = spec.span();
    let spec = spec.into_inner();
    let base = spec.base.get_ref().trim_end_matches('/').to_string();
    check_base_url(&base).map_err(|reason| src.error(spec.base.span(), reason))?;
    let url = spec.url.get_ref();
    let path = match url.strip_prefix("{base}") {
        Some(path) if path.starts_with('/') && !path.contains('{') => path.to_string(),
        _ => {
            return Err(src.error(
                spec.url.span(),
                "verify.url must be '{base}/path' and may not hold {secret} (secrets go in headers)",
            ));
        }
    };
    let mut headers = Vec::new();
    for h in &spec.headers {
        let parsed = h
            .get_ref()
            .split_once(':')
            .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
            .filter(|(n, v)| {
                !n.is_empty()
                    && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !v.is_empty()
            });
        match parsed {
            Some(header) => headers.push(header),
            None => return Err(src.error(h.span(), "verify header must be 'Name: value'")),
        }
    }
    if !headers.iter().any(|(_, v)| v.contains("{secret}")) {
        return Err(src.error(
            span,
            "verify.headers must send the secret: use {secret} in one",
        ));
    }
    if spec.live.is_empty() || spec.live.iter().any(|s| spec.invalid.contains(s)) {
        return Err(src.error(
            span,
            "verify.live must list statuses, none of them also in verify.invalid",
        ));
    }
    Ok(Verifier {
        base,
        path,
        headers,
        live: spec.live,
        invalid: spec.invalid,
    })
}

/// An `http://` or `https://` URL with a host and nothing after it but an
/// optional path prefix.
pub fn check_base_url(base: &str) -> Result<(), String> {
    let rest = base
        .strip_prefix("https://")
        .or_else(|| base.strip_prefix("http://"))
        .ok_or_else(|| format!("verify base '{base}' must start with https:// or http://"))?;
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() || rest.contains(['?', '#', '@', ' ']) {
        return Err(format!(
            "verify base '{base}' must be scheme://host[:port][/prefix] without credentials, query or fragment"
        ));
    }
    Ok(())
}

fn prefix_rule(e: RuleError, id: &str) -> RuleError {
    match e {
        RuleError::Invalid {
            file,
            line,
            column,
            reason,
        } => RuleError::Invalid {
            file,
            line,
            column,
            reason: format!("rule '{id}': {reason}"),
        },
        other => other,
    }
}

/// Parses and compiles a rule regex for byte haystacks, as `regex::bytes`
/// would, and works out which group holds the secret and how long a match
/// can be.
fn compile_regex(pattern: &str) -> Result<(meta::Regex, usize, Option<usize>), String> {
    let hir = regex_syntax::ParserBuilder::new()
        .utf8(false)
        .build()
        .parse(pattern)
        .map_err(|e| format!("invalid regex:\n{e}"))?;
    let props = hir.properties();
    if props.minimum_len() == Some(0) {
        return Err("regex can match the empty string".into());
    }
    let regex = meta::Builder::new()
        .syntax(syntax::Config::new().utf8(false))
        .configure(meta::Config::new().utf8_empty(false))
        .build_from_hir(&hir)
        .map_err(|e| format!("regex does not compile: {e}"))?;
    let group_info = regex.group_info();
    let pid = regex_automata::PatternID::ZERO;
    let secret_group = match group_info.to_index(pid, "secret") {
        Some(i) => i,
        None if props.explicit_captures_len() >= 1 => 1,
        None => 0,
    };
    Ok((regex, secret_group, props.maximum_len()))
}

/// Compiles an allowlist; path globs without `/` match at any depth, as in
/// `.gitignore`.
pub(crate) fn compile_allowlist(
    spec: AllowlistSpec,
    src: &Source<'_>,
) -> Result<Allowlist, RuleError> {
    let paths = if spec.paths.is_empty() {
        None
    } else {
        let mut set = GlobSetBuilder::new();
        for p in &spec.paths {
            let raw = p.get_ref().trim_start_matches("./");
            let glob = if raw.contains('/') {
                raw.trim_start_matches('/').to_string()
            } else {
                format!("**/{raw}")
            };
            let g = GlobBuilder::new(&glob)
                .literal_separator(true)
                .build()
                .map_err(|e| src.error(p.span(), format!("invalid path glob '{raw}': {e}")))?;
            set.add(g);
        }
        Some(
            set.build()
                .map_err(|e| src.error(spec.paths[0].span(), format!("invalid path globs: {e}")))?,
        )
    };
    let mut regexes = Vec::with_capacity(spec.regexes.len());
    for r in &spec.regexes {
        let re = regex::bytes::Regex::new(r.get_ref())
            .map_err(|e| src.error(r.span(), format!("invalid allowlist regex:\n{e}")))?;
        regexes.push(re);
    }
    let stopwords = spec
        .stopwords
        .iter()
        .filter(|w| !w.is_empty())
        .map(|w| w.to_ascii_lowercase().into_bytes())
        .collect();
    Ok(Allowlist {
        paths,
        regexes,
        stopwords,
    })
}
