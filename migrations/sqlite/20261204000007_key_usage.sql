-- Every key check, as evidence (issue 17): which key (or the SHA-256 of a
-- key that is not ours), when (milliseconds since the Unix epoch), from
-- which address and network (/24 or /48), how it ended and with which user
-- agent (one line, capped). Kept for --usage-retention.
CREATE TABLE key_usage (
    key_id     TEXT,
    key_hash   TEXT,
    at_ms      INTEGER NOT NULL,
    ip         TEXT,
    network    TEXT,
    outcome    TEXT NOT NULL,
    user_agent TEXT
);
CREATE INDEX key_usage_key_at ON key_usage (key_id, at_ms);
CREATE INDEX key_usage_at ON key_usage (at_ms);
