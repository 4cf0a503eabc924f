//! Prometheus metrics of the service. Labels never hold a token or key.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

/// Every counter and gauge `/metrics` shows.
pub struct Metrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    tokens: Family<Labels, Counter>,
    pub revocations: Counter,
    signature_failures: Family<Labels, Counter>,
    key_refreshes: Family<Labels, Counter>,
    pub noncurrent_key_uses: Counter,
    pub store_timeouts: Counter,
    pub outbox_depth: Gauge,
    outbox_emails: Family<Labels, Gauge>,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("keywarden");
        let requests = Family::<Labels, Counter>::default();
        let tokens = Family::<Labels, Counter>::default();
        let revocations = Counter::default();
        let signature_failures = Family::<Labels, Counter>::default();
        let key_refreshes = Family::<Labels, Counter>::default();
        let noncurrent_key_uses = Counter::default();
        let store_timeouts = Counter::default();
        let outbox_depth = Gauge::default();
        let outbox_emails = Family::<Labels, Gauge>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        registry.register("partner_tokens", "Reported tokens by label", tokens.clone());
        registry.register(
            "revocations",
            "Keys revoked because they leaked",
            revocations.clone(),
        );
        registry.register(
            "partner_signature_failures",
            "Partner requests refused by signature check, by reason",
            signature_failures.clone(),
        );
        registry.register(
            "github_key_refreshes",
            "Fetches of GitHub's public keys, by result",
            key_refreshes.clone(),
        );
        registry.register(
            "github_noncurrent_key_uses",
            "Reports signed with a GitHub key no longer marked current",
            noncurrent_key_uses.clone(),
        );
        registry.register(
            "store_timeouts",
            "Store calls not answered within --store-timeout",
            store_timeouts.clone(),
        );
        registry.register(
            "outbox_depth",
            "Emails waiting to be sent",
            outbox_depth.clone(),
        );
        registry.register(
            "outbox_emails",
            "Outbox emails by state",
            outbox_emails.clone(),
        );
        Metrics {
            registry,
            requests,
            tokens,
            revocations,
            signature_failures,
            key_refreshes,
            noncurrent_key_uses,
            store_timeouts,
            outbox_depth,
            outbox_emails,
        }
    }

    /// Sets the outbox gauges from counts by state.
    pub fn outbox_states(&self, counts: &[(String, i64)]) {
        for state in ["pending", "sent", "failed", "dead"] {
            let n = counts
                .iter()
                .find(|(s, _)| s == state)
                .map_or(0, |(_, n)| *n);
            self.outbox_emails
                .get_or_create(&vec![("state", state.to_string())])
                .set(n);
        }
    }

    pub fn request(&self, route: &str, status: u16) {
        self.requests
            .get_or_create(&vec![
                ("route", route.to_string()),
                ("status", status.to_string()),
            ])
            .inc();
    }

    pub fn token(&self, label: &str) {
        self.tokens
            .get_or_create(&vec![("label", label.to_string())])
            .inc();
    }

    pub fn signature_failure(&self, reason: &'static str) {
        self.signature_failures
            .get_or_create(&vec![("reason", reason.to_string())])
            .inc();
    }

    pub fn key_refresh(&self, result: &'static str) {
        self.key_refreshes
            .get_or_create(&vec![("result", result.to_string())])
            .inc();
    }

    /// The OpenMetrics text of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
