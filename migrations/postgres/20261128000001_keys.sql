-- Keys: the store holds SHA-256 of each key and its label, never the key.
CREATE TABLE keys (
    id                TEXT PRIMARY KEY,
    key_hash          TEXT NOT NULL UNIQUE CHECK (key_hash ~ '^[0-9a-f]{64}$'),
    label             TEXT NOT NULL,
    name              TEXT NOT NULL,
    owner_id          TEXT NOT NULL,
    owner_email       TEXT NOT NULL,
    team              TEXT,
    key_type          TEXT NOT NULL,
    scopes            TEXT NOT NULL DEFAULT '[]',
    credit_limit      DOUBLE PRECISION,
    usage             DOUBLE PRECISION NOT NULL DEFAULT 0,
    expires_at        BIGINT,
    allowed_ips       TEXT NOT NULL DEFAULT '[]',
    created_at        BIGINT NOT NULL,
    last_used_at      BIGINT,
    revoked_at        BIGINT,
    revocation_reason TEXT
);
CREATE INDEX keys_owner_email ON keys (owner_email);

-- One row per revoked key: the primary key makes a second revocation of
-- the same key impossible, however many writers race.
CREATE TABLE revocations (
    key_id      TEXT PRIMARY KEY REFERENCES keys (id),
    revoked_at  BIGINT NOT NULL,
    reason      TEXT NOT NULL,
    recorded_at BIGINT NOT NULL
);
