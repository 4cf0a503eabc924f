//! Prometheus metrics of the service. Labels never hold a token or key.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

/// The usage log's queue and writes.
#[derive(Clone, Default)]
pub struct UsageMetrics {
    pub queue_depth: Gauge,
    /// Key checks written.
    pub written: Counter,
    /// Rows they were written as (a caller's checks within a second
    /// share one).
    pub rows_written: Counter,
    /// Store transactions that wrote them.
    pub writes: Counter,
    dropped: Family<Labels, Counter>,
    /// Owner alerts queued, by kind.
    alerts: Family<Labels, Counter>,
}

impl UsageMetrics {
    pub fn alert(&self, kind: &'static str) {
        self.alerts
            .get_or_create(&vec![("kind", kind.to_string())])
            .inc();
    }

    pub fn dropped(&self, reason: &'static str) {
        self.dropped_by(reason, 1);
    }

    pub fn dropped_by(&self, reason: &'static str, n: u64) {
        self.dropped
            .get_or_create(&vec![("reason", reason.to_string())])
            .inc_by(n);
    }
}

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
    pub rate_limit_fallbacks: Counter,
    pub usage: UsageMetrics,
    pub outbox_depth: Gauge,
    outbox_emails: Family<Labels, Gauge>,
    pub connections_open: Gauge,
    connections_shed: Family<Labels, Counter>,
    connections_closed: Family<Labels, Counter>,
    accept_errors: Counter,
    partner_bodies_refused: Family<Labels, Counter>,
    tls_reloads: Family<Labels, Counter>,
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
        let rate_limit_fallbacks = Counter::default();
        let usage = UsageMetrics::default();
        let outbox_depth = Gauge::default();
        let outbox_emails = Family::<Labels, Gauge>::default();
        let connections_open = Gauge::default();
        let connections_shed = Family::<Labels, Counter>::default();
        let connections_closed = Family::<Labels, Counter>::default();
        let accept_errors = Counter::default();
        let partner_bodies_refused = Family::<Labels, Counter>::default();
        let tls_reloads = Family::<Labels, Counter>::default();
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
            "rate_limit_fallbacks",
            "Requests rate-limited by this replica alone because the shared rate counter failed",
            rate_limit_fallbacks.clone(),
        );
        registry.register(
            "alerts",
            "Owner alerts queued, by kind (still_in_use, new_network, usage_spike)",
            usage.alerts.clone(),
        );
        registry.register(
            "usage_queue_depth",
            "Usage records waiting to be written",
            usage.queue_depth.clone(),
        );
        registry.register(
            "usage_records_written",
            "Usage records written to the store",
            usage.written.clone(),
        );
        registry.register(
            "usage_rows_written",
            "Usage log rows written (one per key, caller, outcome, user agent and second)",
            usage.rows_written.clone(),
        );
        registry.register(
            "usage_writes",
            "Store transactions that wrote usage records (records per write: written / writes)",
            usage.writes.clone(),
        );
        registry.register(
            "usage_records_dropped",
            "Usage records not kept, by reason (queue_full, store_error)",
            usage.dropped.clone(),
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
        registry.register(
            "connections_open",
            "Open client connections, all listeners",
            connections_open.clone(),
        );
        registry.register(
            "connections_shed",
            "Connections shed at the connection cap: an idle or half-sent one closed for a new one (shed), or the new one refused (refused)",
            connections_shed.clone(),
        );
        registry.register(
            "connections_closed",
            "Connections the service closed itself, by reason (header_timeout, idle_timeout, request_timeout, tls_handshake)",
            connections_closed.clone(),
        );
        registry.register(
            "accept_errors",
            "Failures to accept a connection (e.g. out of descriptors)",
            accept_errors.clone(),
        );
        registry.register(
            "partner_bodies_refused",
            "Partner report bodies not read, by reason (too_large, over_budget, timed_out, broken)",
            partner_bodies_refused.clone(),
        );
        registry.register(
            "tls_reloads",
            "Certificate reloads, by result",
            tls_reloads.clone(),
        );
        Metrics {
            registry,
            connections_open,
            connections_shed,
            connections_closed,
            accept_errors,
            partner_bodies_refused,
            tls_reloads,
            requests,
            tokens,
            revocations,
            signature_failures,
            key_refreshes,
            noncurrent_key_uses,
            store_timeouts,
            rate_limit_fallbacks,
            usage,
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
        self.labelled(&self.tokens, "label", label);
    }

    pub fn signature_failure(&self, reason: &'static str) {
        self.labelled(&self.signature_failures, "reason", reason);
    }

    pub fn key_refresh(&self, result: &'static str) {
        self.labelled(&self.key_refreshes, "result", result);
    }

    pub fn connection_shed(&self, how: &'static str) {
        self.labelled(&self.connections_shed, "how", how);
    }

    pub fn connection_closed(&self, reason: &'static str) {
        self.labelled(&self.connections_closed, "reason", reason);
    }

    pub fn accept_error(&self) {
        self.accept_errors.inc();
    }

    pub fn partner_body_refused(&self, reason: &'static str) {
        self.labelled(&self.partner_bodies_refused, "reason", reason);
    }

    pub fn alert(&self, kind: &'static str) {
        self.usage.alert(kind);
    }

    pub fn tls_reload(&self, result: &'static str) {
        self.labelled(&self.tls_reloads, "result", result);
    }

    fn labelled(&self, family: &Family<Labels, Counter>, name: &'static str, value: &str) {
        family.get_or_create(&vec![(name, value.to_string())]).inc();
    }

    /// The OpenMetrics text of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
