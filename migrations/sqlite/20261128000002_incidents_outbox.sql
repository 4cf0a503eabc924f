-- What happened to a key: revoked because it leaked, or seen again after.
CREATE TABLE incidents (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    key_id      TEXT NOT NULL REFERENCES keys (id),
    kind        TEXT NOT NULL CHECK (kind IN ('revoked', 'sighting')),
    reporter    TEXT NOT NULL,
    token_type  TEXT NOT NULL,
    url         TEXT,
    source      TEXT NOT NULL,
    request_id  TEXT,
    reported_at INTEGER NOT NULL
);
CREATE INDEX incidents_key ON incidents (key_id);

-- Emails to send. At most one per key and kind: a key reported again never
-- queues a second "your key was revoked" email.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    key_id          TEXT NOT NULL REFERENCES keys (id),
    incident_id     INTEGER NOT NULL REFERENCES incidents (id),
    kind            TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    UNIQUE (key_id, kind)
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
