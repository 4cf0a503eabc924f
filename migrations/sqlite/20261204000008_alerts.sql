-- Alerts that are not about a leak report (issue 17): a key used from a new
-- network, a spike over its usual rate. Outbox rows may have no incident,
-- go to a channel (an email to the owner, or the deployment's webhook),
-- say once-per-what in `dedup` (the network, the day) and carry their
-- evidence as JSON. SQLite cannot drop NOT NULL in place: the table is
-- rebuilt, and outbox_attempts with it (it refers to outbox, and the
-- migration's transaction keeps foreign keys on): the new attempts table
-- refers to the new outbox, the old tables go child first, and renaming
-- the new outbox carries the reference along.
CREATE TABLE outbox_rebuilt (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    key_id          TEXT NOT NULL REFERENCES keys (id),
    incident_id     INTEGER REFERENCES incidents (id),
    kind            TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    claimed_by      TEXT,
    lease_until     INTEGER,
    sent_at         INTEGER,
    channel         TEXT NOT NULL DEFAULT 'email' CHECK (channel IN ('email', 'webhook')),
    dedup           TEXT NOT NULL DEFAULT '',
    evidence        TEXT,
    UNIQUE (key_id, kind, channel, dedup)
);
CREATE TABLE outbox_attempts_rebuilt (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    outbox_id   INTEGER NOT NULL REFERENCES outbox_rebuilt (id),
    attempt     INTEGER NOT NULL,
    worker      TEXT NOT NULL,
    finished_at INTEGER NOT NULL,
    outcome     TEXT NOT NULL,
    error       TEXT
);
INSERT INTO outbox_rebuilt (id, key_id, incident_id, kind, recipient, state, attempts,
    next_attempt_at, last_error, created_at, claimed_by, lease_until, sent_at)
SELECT id, key_id, incident_id, kind, recipient, state, attempts,
    next_attempt_at, last_error, created_at, claimed_by, lease_until, sent_at FROM outbox;
INSERT INTO outbox_attempts_rebuilt (id, outbox_id, attempt, worker, finished_at, outcome, error)
SELECT id, outbox_id, attempt, worker, finished_at, outcome, error FROM outbox_attempts;
DROP TABLE outbox_attempts;
DROP TABLE outbox;
ALTER TABLE outbox_rebuilt RENAME TO outbox;
ALTER TABLE outbox_attempts_rebuilt RENAME TO outbox_attempts;
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);

-- Each key's admitted and refused checks by hour and caller network,
-- kept beside the raw log by the same write: a key's usual networks and
-- its usual rate, read without scanning a week of records.
CREATE TABLE key_usage_hourly (
    key_id   TEXT NOT NULL,
    hour_ms  INTEGER NOT NULL,
    network  TEXT NOT NULL,
    requests INTEGER NOT NULL,
    PRIMARY KEY (key_id, hour_ms, network)
);
INSERT INTO key_usage_hourly (key_id, hour_ms, network, requests)
SELECT key_id, (at_ms / 3600000) * 3600000, COALESCE(network, 'unknown'), COUNT(*)
FROM key_usage WHERE key_id IS NOT NULL GROUP BY 1, 2, 3;
