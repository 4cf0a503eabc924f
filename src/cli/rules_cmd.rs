//! `keywarden rules list` and `keywarden rules check`.

use super::ConfigArgs;
use super::scan_cmd::load_rules;
use clap::Subcommand;
use keywarden::matcher::self_test;
use keywarden::rules::{self, Rule, RuleSet};
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum RulesCommand {
    /// Show the active rules (built-in plus configuration).
    List {
        #[command(flatten)]
        config: ConfigArgs,
        /// Output as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Validate rule files and run each rule's examples; with no FILES,
    /// check the active rules.
    Check {
        /// Rule files to check.
        #[arg(value_name = "FILE")]
        files: Vec<PathBuf>,
        #[command(flatten)]
        config: ConfigArgs,
    },
}

#[derive(Serialize)]
struct RuleView<'a> {
    id: &'a str,
    description: &'a str,
    severity: &'a str,
    keywords: &'a [String],
    regex: &'a str,
    entropy: Option<f64>,
    source: String,
}

pub fn run(cmd: RulesCommand) -> anyhow::Result<u8> {
    match cmd {
        RulesCommand::List { config, json } => {
            let set = load_rules(&config, Path::new("."))?;
            list(&set, json)?;
            Ok(0)
        }
        RulesCommand::Check { files, config } => check(&files, &config),
    }
}

fn list(set: &RuleSet, json: bool) -> anyhow::Result<()> {
    let views: Vec<_> = set
        .rules
        .iter()
        .map(|r| RuleView {
            id: &r.id,
            description: &r.description,
            severity: r.severity.as_str(),
            keywords: &r.keywords,
            regex: &r.pattern,
            entropy: r.entropy,
            source: r.origin.to_string(),
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&views)?);
        return Ok(());
    }
    let width = views.iter().map(|v| v.id.len()).max().unwrap_or(2).max(2);
    println!(
        "{:width$}  {:8}  {:24}  DESCRIPTION (SOURCE)",
        "ID", "SEVERITY", "KEYWORDS"
    );
    for v in views {
        println!(
            "{:width$}  {:8}  {:24}  {} ({})",
            v.id,
            v.severity,
            v.keywords.join(","),
            v.description,
            v.source
        );
    }
    Ok(())
}

/// Exit status: 0 all good, 1 a rule failed its examples, 2 a file is invalid.
fn check(files: &[PathBuf], config: &ConfigArgs) -> anyhow::Result<u8> {
    let mut groups: Vec<(String, Vec<Rule>)> = Vec::new();
    let mut invalid = false;
    if files.is_empty() {
        let set = load_rules(config, Path::new("."))?;
        groups.push(("active rules".into(), set.rules));
    }
    for f in files {
        match rules::load_file(f) {
            Ok(doc) => groups.push((f.display().to_string(), doc.rules)),
            Err(e) => {
                eprintln!("error: {e}");
                invalid = true;
            }
        }
    }
    let mut failed = false;
    for (name, rules) in &groups {
        for rule in rules {
            let problems = self_test(rule)?;
            if problems.is_empty() {
                println!(
                    "ok      {name}: {} ({} examples, {} negative examples)",
                    rule.id,
                    rule.examples.len(),
                    rule.negative_examples.len()
                );
            } else {
                failed = true;
                println!("FAILED  {name}: {}", rule.id);
                for p in problems {
                    println!("          {p}");
                }
            }
        }
    }
    Ok(if invalid {
        super::EXIT_ERROR
    } else if failed {
        1
    } else {
        0
    })
}
