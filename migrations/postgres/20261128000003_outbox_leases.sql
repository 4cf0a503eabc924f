-- Outbox claims are leases: a worker owns a row until lease_until; a row
-- whose worker died is claimed again once the lease has run out.
ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
ALTER TABLE outbox ADD COLUMN lease_until BIGINT;
ALTER TABLE outbox ADD COLUMN sent_at BIGINT;

-- Every delivery attempt and its error, kept.
CREATE TABLE outbox_attempts (
    id          BIGSERIAL PRIMARY KEY,
    outbox_id   BIGINT NOT NULL REFERENCES outbox (id),
    attempt     BIGINT NOT NULL,
    worker      TEXT NOT NULL,
    finished_at BIGINT NOT NULL,
    outcome     TEXT NOT NULL,
    error       TEXT
);
