-- Outbox claims are leases: a worker owns a row until lease_until; a row
-- whose worker died is claimed again once the lease has run out.
ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
ALTER TABLE outbox ADD COLUMN lease_until INTEGER;
ALTER TABLE outbox ADD COLUMN sent_at INTEGER;

-- Every delivery attempt and its error, kept.
CREATE TABLE outbox_attempts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    outbox_id   INTEGER NOT NULL REFERENCES outbox (id),
    attempt     INTEGER NOT NULL,
    worker      TEXT NOT NULL,
    finished_at INTEGER NOT NULL,
    outcome     TEXT NOT NULL,
    error       TEXT
);
