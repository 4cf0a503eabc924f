//! `--verify`: asks each rule's provider whether the secrets found still
//! work, and marks findings `live`, `invalid` or `unknown`.
//!
//! Each distinct secret is checked once, by a bounded number of threads,
//! with a short timeout. The secret goes only in a header, only to the
//! configured base URL's host: no redirects are followed and no proxy is
//! used. This module never prints and never decides what is a finding.

use crate::rules::{Rule, Verifier};
use crate::scan::{Finding, Liveness};
use crate::secret::Secret;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// How to verify.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Replaces every rule's default base URL (e.g. a local `keywarden
    /// serve`, or an OpenRouter-compatible gateway).
    pub base_url: Option<String>,
    /// Per check, connection included.
    pub timeout: Duration,
    /// Checks in flight at once.
    pub concurrency: usize,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            base_url: None,
            timeout: Duration::from_secs(5),
            concurrency: 8,
        }
    }
}

/// What verification did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct VerifySummary {
    /// Distinct secrets checked.
    pub checked: usize,
    pub live: usize,
    pub invalid: usize,
    pub unknown: usize,
    /// Findings whose rule has no verification.
    pub unverifiable: usize,
}

/// Checks every finding whose rule defines a verification and records the
/// answer in `finding.verification`.
pub fn verify_findings(
    findings: &mut [Finding],
    rules: &[Rule],
    options: &VerifyOptions,
) -> VerifySummary {
    let mut summary = VerifySummary::default();
    let mut jobs: Vec<(&Verifier, Secret)> = Vec::new();
    let mut index: HashMap<(String, Secret), usize> = HashMap::new();
    let mut job_of = Vec::with_capacity(findings.len());
    for f in findings.iter() {
        let verifier = rules
            .iter()
            .find(|r| r.id == f.rule_id)
            .and_then(|r| r.verify.as_ref());
        let Some(verifier) = verifier else {
            summary.unverifiable += 1;
            job_of.push(None);
            continue;
        };
        let key = (f.rule_id.clone(), f.secret.clone());
        let job = *index.entry(key).or_insert_with(|| {
            jobs.push((verifier, f.secret.clone()));
            jobs.len() - 1
        });
        job_of.push(Some(job));
    }
    let answers = run_checks(&jobs, options);
    summary.checked = answers.len();
    for answer in &answers {
        match answer {
            Liveness::Live => summary.live += 1,
            Liveness::Invalid => summary.invalid += 1,
            Liveness::Unknown => summary.unknown += 1,
        }
    }
    for (f, job) in findings.iter_mut().zip(job_of) {
        f.verification = job.map(|j| answers[j]);
    }
    summary
}

/// Runs the checks on at most `options.concurrency` threads.
fn run_checks(jobs: &[(&Verifier, Secret)], options: &VerifyOptions) -> Vec<Liveness> {
    let answers = Mutex::new(vec![Liveness::Unknown; jobs.len()]);
    let next = AtomicUsize::new(0);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(options.timeout))
        .max_redirects(0)
        .proxy(None)
        .http_status_as_error(false)
        .user_agent(concat!("keywarden/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let threads = options.concurrency.clamp(1, 64).min(jobs.len());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((verifier, secret)) = jobs.get(i) else {
                        break;
                    };
                    let answer = check(&agent, verifier, secret, options.base_url.as_deref());
                    if let Ok(mut answers) = answers.lock() {
                        answers[i] = answer;
                    }
                }
            });
        }
    });
    answers.into_inner().unwrap_or_default()
}

/// One check: `GET {base}{path}` with the secret in the verifier's headers.
fn check(agent: &ureq::Agent, v: &Verifier, secret: &Secret, base: Option<&str>) -> Liveness {
    let Ok(text) = std::str::from_utf8(secret.expose()) else {
        return Liveness::Unknown;
    };
    let base = base.unwrap_or(&v.base).trim_end_matches('/');
    let mut request = agent.get(format!("{base}{}", v.path));
    for (name, template) in &v.headers {
        request = request.header(name.as_str(), template.replace("{secret}", text));
    }
    match request.call() {
        Ok(response) => {
            let status = response.status().as_u16();
            if v.live.contains(&status) {
                Liveness::Live
            } else if v.invalid.contains(&status) {
                Liveness::Invalid
            } else {
                Liveness::Unknown
            }
        }
        Err(_) => Liveness::Unknown,
    }
}
