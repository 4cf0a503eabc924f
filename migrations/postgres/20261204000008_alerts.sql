-- Alerts that are not about a leak report (issue 17): a key used from a new
-- network, a spike over its usual rate. Outbox rows may have no incident,
-- go to a channel (an email to the owner, or the deployment's webhook),
-- say once-per-what in `dedup` (the network, the day) and carry their
-- evidence as JSON.
ALTER TABLE outbox ALTER COLUMN incident_id DROP NOT NULL;
ALTER TABLE outbox
    ADD COLUMN channel TEXT NOT NULL DEFAULT 'email' CHECK (channel IN ('email', 'webhook')),
    ADD COLUMN dedup TEXT NOT NULL DEFAULT '',
    ADD COLUMN evidence TEXT;
ALTER TABLE outbox DROP CONSTRAINT outbox_key_id_kind_key;
ALTER TABLE outbox ADD CONSTRAINT outbox_once UNIQUE (key_id, kind, channel, dedup);

-- Each key's admitted and refused checks by hour and caller network,
-- kept beside the raw log by the same write: a key's usual networks and
-- its usual rate, read without scanning a week of records.
CREATE TABLE key_usage_hourly (
    key_id   TEXT NOT NULL,
    hour_ms  BIGINT NOT NULL,
    network  TEXT NOT NULL,
    requests BIGINT NOT NULL,
    PRIMARY KEY (key_id, hour_ms, network)
);
INSERT INTO key_usage_hourly (key_id, hour_ms, network, requests)
SELECT key_id, (at_ms / 3600000) * 3600000, COALESCE(network, 'unknown'), COUNT(*)
FROM key_usage WHERE key_id IS NOT NULL GROUP BY 1, 2, 3;
