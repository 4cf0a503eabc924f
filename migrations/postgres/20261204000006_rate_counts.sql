-- Shared rate limits (src/server/rate_limit.rs): every replica claims
-- tokens for a key from these counts, so that all replicas together admit
-- at most the key type's limit in any 60-second window. Counts are
-- per key and one-second slot of this server's clock; a window is the
-- last 62 slots (61 for any 60 s span, one more because a replica may use
-- a token up to a second after the slot it was granted in).
-- UNLOGGED: counts live a minute; losing them in a crash is harmless and
-- not worth a WAL write per request batch.
CREATE UNLOGGED TABLE rate_slots (
    key_id TEXT NOT NULL,
    slot BIGINT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (key_id, slot)
);
CREATE INDEX rate_slots_by_slot ON rate_slots (slot);

-- One row per key ever claimed: the row lock that serializes claims for
-- that key across replicas. Rows are never deleted (a deleted lock row
-- would let two claims in at once); each is a key id.
CREATE UNLOGGED TABLE rate_keys (
    key_id TEXT PRIMARY KEY
);

-- One call per replica batch. p_claims is a JSON array of
-- {"k": key id, "l": limit, "w": tokens wanted, "rs": slot of a refund,
--  "rn": tokens refunded}. For each claim, in key order (so that two
-- batches never wait on each other in a cycle): refund, count the window,
-- grant at most what is left, and say when the window has room again if
-- it is full.
CREATE FUNCTION keywarden_rate_sync(p_claims TEXT)
RETURNS TABLE (
    out_key TEXT,
    out_granted INTEGER,
    out_slot BIGINT,
    out_used INTEGER,
    out_room_in_ms BIGINT
)
LANGUAGE plpgsql AS $$
DECLARE
    c RECORD;
    v_now_ms BIGINT;
    v_slot BIGINT;
    v_used INTEGER;
    v_grant INTEGER;
    v_room BIGINT;
BEGIN
    FOR c IN
        SELECT x.k, x.l, x.w, x.rs, x.rn
        FROM jsonb_to_recordset(p_claims::jsonb) AS x(k TEXT, l INTEGER, w INTEGER, rs BIGINT, rn INTEGER)
        ORDER BY x.k COLLATE "C"
    LOOP
        INSERT INTO rate_keys VALUES (c.k) ON CONFLICT DO NOTHING;
        PERFORM 1 FROM rate_keys k WHERE k.key_id = c.k FOR UPDATE;
        -- The time after the lock: a grant counts from when it was made.
        v_now_ms := floor(extract(epoch FROM clock_timestamp()) * 1000);
        v_slot := v_now_ms / 1000;
        IF coalesce(c.rn, 0) > 0 THEN
            UPDATE rate_slots s SET n = greatest(s.n - c.rn, 0)
                WHERE s.key_id = c.k AND s.slot = c.rs;
        END IF;
        DELETE FROM rate_slots s WHERE s.key_id = c.k AND s.slot <= v_slot - 62;
        SELECT coalesce(sum(s.n), 0) INTO v_used FROM rate_slots s WHERE s.key_id = c.k;
        v_grant := greatest(least(c.w, c.l - v_used), 0);
        IF v_grant > 0 THEN
            INSERT INTO rate_slots AS s VALUES (c.k, v_slot, v_grant)
                ON CONFLICT (key_id, slot) DO UPDATE SET n = s.n + EXCLUDED.n;
        END IF;
        v_room := NULL;
        IF v_used + v_grant >= c.l THEN
            SELECT (w.slot + 62) * 1000 - v_now_ms INTO v_room
            FROM (SELECT s.slot, sum(s.n) OVER (ORDER BY s.slot) AS cum
                  FROM rate_slots s WHERE s.key_id = c.k) w
            WHERE v_used + v_grant - w.cum < c.l
            ORDER BY w.slot LIMIT 1;
        END IF;
        out_key := c.k;
        out_granted := v_grant;
        out_slot := v_slot;
        out_used := v_used + v_grant;
        out_room_in_ms := v_room;
        RETURN NEXT;
    END LOOP;
END
$$;
