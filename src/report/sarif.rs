//! SARIF 2.1.0, as GitHub code scanning accepts it: every active rule in
//! `tool.driver.rules`, results with `ruleId`/`ruleIndex`, a relative
//! `artifactLocation.uri`, a `region`, and `partialFingerprints`.

use super::ReportContext;
use crate::rules::{Rule, Severity};
use crate::scan::Finding;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde_sarif::sarif::{
    ArtifactLocation, Location, Message, MultiformatMessageString, PhysicalLocation, PropertyBag,
    Region, ReportingConfiguration, ReportingDescriptor, Result as SarifResult, ResultLevel, Run,
    Sarif, Tool, ToolComponent,
};
use std::collections::BTreeMap;
use std::io::{self, Write};

const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";
/// The key under which GitHub reads our fingerprint.
const FINGERPRINT_KEY: &str = "keywarden/v1";

/// Characters escaped in a relative URI path (RFC 3986 path segments).
const PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

fn level(s: Severity) -> ResultLevel {
    match s {
        Severity::Critical | Severity::High => ResultLevel::Error,
        Severity::Medium => ResultLevel::Warning,
        Severity::Low | Severity::Info => ResultLevel::Note,
    }
}

/// GitHub's `security-severity`: a CVSS-like score it buckets into
/// critical (9.0+), high (7.0+), medium (4.0+) and low.
fn security_severity(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "3.0",
        Severity::Info => "0.5",
    }
}

/// A relative path as a URI reference; absolute paths become `file://`.
fn uri(path: &str) -> String {
    let encoded = utf8_percent_encode(&path.replace('\\', "/"), PATH).to_string();
    if path.starts_with('/') {
        format!("file://{encoded}")
    } else {
        encoded
    }
}

/// A rule's name for people, distinct from its id as SARIF asks:
/// `openrouter-api-key` → `OpenrouterApiKey`.
fn display_name(id: &str) -> String {
    id.split(['-', '_', '.'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map_or(String::new(), |f| f.to_uppercase().chain(c).collect())
        })
        .collect()
}

fn descriptor(rule: &Rule) -> ReportingDescriptor {
    let mut props = BTreeMap::new();
    props.insert(
        "security-severity".to_string(),
        serde_json::Value::from(security_severity(rule.severity)),
    );
    props.insert("precision".to_string(), serde_json::Value::from("high"));
    ReportingDescriptor::builder()
        .id(rule.id.clone())
        .name(display_name(&rule.id))
        .short_description(
            MultiformatMessageString::builder()
                .text(rule.description.clone())
                .build(),
        )
        .full_description(
            MultiformatMessageString::builder()
                .text(format!("{} (pattern: {})", rule.description, rule.pattern))
                .build(),
        )
        .help(
            MultiformatMessageString::builder()
                .text(
                    "Revoke the exposed secret, replace it where it is used, and remove it from \
                     the code and its history. Mark a false positive with a `keywarden:allow` \
                     comment on its line.",
                )
                .build(),
        )
        .default_configuration(
            ReportingConfiguration::builder()
                .level(serde_json::to_value(level(rule.severity)).unwrap_or_default())
                .build(),
        )
        .properties(
            PropertyBag::builder()
                .tags(vec!["security".to_string(), "secret".to_string()])
                .additional_properties(props)
                .build(),
        )
        .build()
}

/// ` in member M` for a secret inside an archive.
fn member_note(f: &Finding) -> String {
    f.member
        .as_deref()
        .map(|m| format!(" in member {m}"))
        .unwrap_or_default()
}

fn result(f: &Finding, rules: &[Rule], ctx: &ReportContext<'_>) -> SarifResult {
    let region = Region::builder()
        .start_line(f.line as i64)
        .start_column(f.column as i64)
        .end_line(f.end_line as i64)
        .end_column(f.end_column as i64 + 1)
        .build();
    let location = Location::builder()
        .physical_location(
            PhysicalLocation::builder()
                .artifact_location(ArtifactLocation::builder().uri(uri(f.file_path())).build())
                .region(region)
                .build(),
        )
        .build();
    let mut fingerprints = BTreeMap::new();
    fingerprints.insert(FINGERPRINT_KEY.to_string(), f.fingerprint.clone());
    let builder = SarifResult::builder()
        .rule_id(f.rule_id.clone())
        .level(level(f.severity))
        .message(
            Message::builder()
                .text(match &f.commit {
                    Some(c) => format!(
                        "{} found{}: {}{} ({})",
                        f.description,
                        member_note(f),
                        ctx.secret_text(f),
                        super::verification_note(f),
                        super::commit::one_line(c)
                    ),
                    None => format!(
                        "{} found{}: {}{}",
                        f.description,
                        member_note(f),
                        ctx.secret_text(f),
                        super::verification_note(f)
                    ),
                })
                .build(),
        )
        .locations(vec![location])
        .partial_fingerprints(fingerprints);

    let mut result = match rules.iter().position(|r| r.id == f.rule_id) {
        Some(i) => builder.rule_index(i as i64).build(),
        None => builder.build(),
    };
    let mut props = BTreeMap::new();
    if let Some(v) = f.verification {
        props.insert("verification".to_string(), serde_json::json!(v.as_str()));
    }
    if !f.encoding.is_empty() {
        props.insert("encoding".to_string(), serde_json::json!(f.encoding));
    }
    if let Some(member) = &f.member {
        props.insert("member".to_string(), serde_json::json!(member));
    }
    if !props.is_empty() {
        result.properties = Some(PropertyBag::builder().additional_properties(props).build());
    }
    result
}

pub(super) fn write(
    out: &mut dyn Write,
    findings: &[Finding],
    ctx: &ReportContext<'_>,
) -> io::Result<()> {
    let mut driver = ToolComponent::builder()
        .name("keywarden")
        .version(env!("CARGO_PKG_VERSION"))
        .rules(ctx.rules.iter().map(descriptor).collect::<Vec<_>>())
        .build();
    // The project's public address, once Cargo.toml names one.
    driver.information_uri = option_env!("CARGO_PKG_REPOSITORY")
        .filter(|u| !u.is_empty())
        .map(str::to_string);
    let run = Run::builder()
        .tool(Tool::builder().driver(driver).build())
        .results(
            findings
                .iter()
                .map(|f| result(f, ctx.rules, ctx))
                .collect::<Vec<_>>(),
        )
        .build();
    let log = Sarif::builder()
        .schema(SCHEMA)
        .version(serde_json::Value::from("2.1.0"))
        .runs(vec![run])
        .build();
    serde_json::to_writer_pretty(&mut *out, &log)?;
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::uri;

    #[test]
    fn rule_names_differ_from_ids() {
        assert_eq!(
            super::display_name("openrouter-api-key"),
            "OpenrouterApiKey"
        );
    }

    #[test]
    fn uris_are_relative_and_percent_encoded() {
        assert_eq!(uri("src/a b#1.py"), "src/a%20b%231.py");
        assert_eq!(uri("/abs/x.txt"), "file:///abs/x.txt");
        assert_eq!(uri("dir/é.txt"), "dir/%C3%A9.txt");
    }
}
