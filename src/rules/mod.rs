//! Rules: the model, loading and validation of TOML rule files, and the
//! built-in rules embedded from `rules/*.toml`.
//!
//! A rule says what a secret looks like (keywords for the prefilter, a regex
//! to confirm, an optional entropy floor) and what not to report (its
//! allowlist). This module only loads and checks rules; it never reads the
//! files being scanned and never matches (see `matcher`).

mod compile;
mod error;
mod model;
mod spec;

pub use compile::check_base_url;
pub use error::RuleError;
pub use model::{Allowlist, Rule, RuleOrigin, Severity, Verifier};

use compile::{Source, compile_allowlist, compile_rule};
use spec::DocumentSpec;
use std::collections::HashSet;
use std::path::Path;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/builtin_rules.rs"));
}

/// The name of the configuration file looked for at the scan root.
pub const CONFIG_FILE_NAME: &str = ".keywarden.toml";

/// A rule id named in `disabled_rules`, with the error to give if no rule
/// has that id.
#[derive(Debug)]
pub struct DisabledRule {
    pub id: String,
    unknown: RuleError,
}

/// One parsed and checked rule file or configuration file.
#[derive(Debug)]
pub struct Document {
    pub name: String,
    pub rules: Vec<Rule>,
    pub disabled_rules: Vec<DisabledRule>,
    pub allowlist: Allowlist,
}

/// Parses and checks a document; `name` is used in error messages.
pub fn parse_document(name: &str, text: &str, origin: RuleOrigin) -> Result<Document, RuleError> {
    let spec: DocumentSpec = toml::from_str(text).map_err(|e| {
        RuleError::at(
            name,
            text,
            e.span().unwrap_or(0..0),
            e.message().trim_end().to_string(),
        )
    })?;
    let src = Source {
        name,
        text,
        origin: &origin,
    };
    let mut rules = Vec::with_capacity(spec.rules.len());
    let mut seen = HashSet::new();
    for r in spec.rules {
        let id_span = r.get_ref().id.span();
        let rule = compile_rule(r, &src)?;
        if !seen.insert(rule.id.clone()) {
            return Err(RuleError::at(
                name,
                text,
                id_span,
                format!("rule id '{}' is defined twice in this file", rule.id),
            ));
        }
        rules.push(rule);
    }
    let disabled_rules = spec
        .disabled_rules
        .into_iter()
        .map(|d| DisabledRule {
            unknown: RuleError::at(
                name,
                text,
                d.span(),
                format!("disabled_rules names unknown rule '{}'", d.get_ref()),
            ),
            id: d.into_inner(),
        })
        .collect();
    let allowlist = match spec.allowlist {
        Some(a) => compile_allowlist(a.into_inner(), &src)?,
        None => Allowlist::default(),
    };
    Ok(Document {
        name: name.to_string(),
        rules,
        disabled_rules,
        allowlist,
    })
}

/// Reads, parses and checks a rule file.
pub fn load_file(path: &Path) -> Result<Document, RuleError> {
    load(path, "rule file")
}

/// Reads, parses and checks a configuration file (`.keywarden.toml`).
pub fn load_config_file(path: &Path) -> Result<Document, RuleError> {
    load(path, "configuration file")
}

fn load(path: &Path, what: &'static str) -> Result<Document, RuleError> {
    let text = std::fs::read_to_string(path).map_err(|source| RuleError::Read {
        path: path.to_path_buf(),
        what,
        source,
    })?;
    let name = path.display().to_string();
    parse_document(&name, &text, RuleOrigin::File(name.clone()))
}

/// The built-in rule files, parsed.
pub fn builtin_documents() -> Result<Vec<Document>, RuleError> {
    embedded::BUILTIN_RULE_FILES
        .iter()
        .map(|(file, text)| {
            parse_document(
                &format!("rules/{file}"),
                text,
                RuleOrigin::Builtin(file.to_string()),
            )
        })
        .collect()
}

/// The active rules and the global allowlist for one scan.
#[derive(Debug, Clone)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
    pub allowlist: Allowlist,
}

impl RuleSet {
    /// The built-in rules with no configuration.
    pub fn builtin() -> Result<Self, RuleError> {
        Self::with_config(None)
    }

    /// The built-in rules, extended by `config`: its rules are added (a rule
    /// with a built-in's id replaces it), `disabled_rules` are removed, and
    /// its allowlist becomes the global allowlist.
    pub fn with_config(config: Option<Document>) -> Result<Self, RuleError> {
        let mut rules: Vec<Rule> = Vec::new();
        for doc in builtin_documents()? {
            for rule in doc.rules {
                if rules.iter().any(|r| r.id == rule.id) {
                    return Err(RuleError::Invalid {
                        file: doc.name.clone(),
                        line: 1,
                        column: 1,
                        reason: format!("built-in rule id '{}' is defined twice", rule.id),
                    });
                }
                rules.push(rule);
            }
        }
        let Some(config) = config else {
            return Ok(RuleSet {
                rules,
                allowlist: Allowlist::default(),
            });
        };
        for rule in config.rules {
            match rules.iter_mut().find(|r| r.id == rule.id) {
                Some(existing) => *existing = rule,
                None => rules.push(rule),
            }
        }
        for disabled in config.disabled_rules {
            let before = rules.len();
            rules.retain(|r| r.id != disabled.id);
            if rules.len() == before {
                return Err(disabled.unknown);
            }
        }
        Ok(RuleSet {
            rules,
            allowlist: config.allowlist,
        })
    }

    /// The rules of one document alone (for `rules check FILE`).
    pub fn from_document(doc: Document) -> Self {
        RuleSet {
            rules: doc.rules,
            allowlist: doc.allowlist,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Document, RuleError> {
        parse_document("t.toml", text, RuleOrigin::File("t.toml".into()))
    }

    fn invalid(text: &str) -> (usize, String) {
        match parse(text).unwrap_err() {
            RuleError::Invalid { line, reason, .. } => (line, reason),
            other => panic!("unexpected {other}"),
        }
    }

    const GOOD: &str = r#"
[[rules]]
id = "demo"
description = "Demo token"
keywords = ["demo_"]
regex = '''demo_([a-z]{8})'''
"#;

    #[test]
    fn builtin_rules_load_and_include_openrouter() {
        let set = RuleSet::builtin().unwrap();
        let r = set
            .rules
            .iter()
            .find(|r| r.id == "openrouter-api-key")
            .unwrap();
        assert!(
            r.entropy.is_none(),
            "the OpenRouter rule must not filter by entropy"
        );
        assert_eq!(r.origin, RuleOrigin::Builtin("openrouter.toml".into()));
    }

    #[test]
    fn capture_group_names_the_secret() {
        let doc = parse(GOOD).unwrap();
        assert_eq!(doc.rules[0].secret_group, 1);
        assert_eq!(doc.rules[0].max_len, Some(13));
        assert_eq!(doc.rules[0].severity, Severity::High);
    }

    #[test]
    fn bad_regex_names_file_line_and_reason() {
        let (line, reason) = invalid(&GOOD.replace("demo_([a-z]{8})", "demo_([a-z]{8}"));
        assert_eq!(line, 6);
        assert!(
            reason.contains("rule 'demo'") && reason.contains("invalid regex"),
            "{reason}"
        );
    }

    #[test]
    fn toml_syntax_error_names_line() {
        let (line, _) = invalid("[[rules]]\nid = \"x\"\ndescription = \n");
        assert_eq!(line, 3);
    }

    #[test]
    fn missing_field_and_unknown_field_are_errors() {
        let (_, reason) = invalid("[[rules]]\nid = \"x\"\ndescription = \"d\"\n");
        assert!(reason.contains("regex"), "{reason}");
        let (line, reason) = invalid(&format!("{GOOD}colour = \"red\"\n"));
        assert!(reason.contains("colour"), "{reason}");
        assert_eq!(line, 7);
    }

    #[test]
    fn empty_matching_regex_entropy_range_and_severity_are_checked() {
        assert!(
            invalid(&GOOD.replace("demo_([a-z]{8})", "x*"))
                .1
                .contains("empty string")
        );
        assert!(
            invalid(&format!("{GOOD}entropy = 9.5\n"))
                .1
                .contains("entropy")
        );
        assert!(
            invalid(&format!("{GOOD}severity = \"urgent\"\n"))
                .1
                .contains("unknown severity")
        );
    }

    #[test]
    fn duplicate_ids_in_one_file_are_refused() {
        let (line, reason) = invalid(&format!("{GOOD}{GOOD}"));
        assert_eq!(line, 9);
        assert!(reason.contains("defined twice"));
    }

    #[test]
    fn config_adds_replaces_and_disables_rules() {
        let cfg = parse(&format!(
            "disabled_rules = [\"openrouter-api-key\"]\n[allowlist]\npaths = [\"*.lock\"]\n{GOOD}"
        ))
        .unwrap();
        let set = RuleSet::with_config(Some(cfg)).unwrap();
        let ids: Vec<_> = set.rules.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["demo"]);
        assert!(set.allowlist.allows_path("deep/dir/Cargo.lock"));
        assert!(!set.allowlist.allows_path("Cargo.toml"));
    }

    #[test]
    fn disabling_an_unknown_rule_is_an_error_with_its_line() {
        let cfg = parse("\n\ndisabled_rules = [\"nope\"]\n").unwrap();
        let err = RuleSet::with_config(Some(cfg)).unwrap_err().to_string();
        assert!(err.starts_with("t.toml:3:"), "{err}");
        assert!(err.contains("unknown rule 'nope'"));
    }

    #[test]
    fn stopwords_are_case_insensitive_and_regexes_match_the_secret() {
        let doc = parse(&format!(
            "{GOOD}[rules.allowlist]\nstopwords = [\"Example\"]\nregexes = ['^demo_a+$']\n"
        ))
        .unwrap();
        let a = &doc.rules[0].allowlist;
        assert!(a.allows_secret(b"demo_myEXAMPLEx"));
        assert!(a.allows_secret(b"demo_aaaaaaaa"));
        assert!(!a.allows_secret(b"demo_abcdefgh"));
    }

    #[test]
    fn unreadable_rule_file_is_a_read_error() {
        let err = load_file(Path::new("/nonexistent/rules.toml")).unwrap_err();
        assert!(matches!(err, RuleError::Read { .. }));
        assert!(err.to_string().contains("/nonexistent/rules.toml"));
    }
}
