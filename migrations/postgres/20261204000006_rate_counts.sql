-- Shared rate limits (src/server/rate_limit.rs): every replica claims
-- tokens for a key from these counts, so that all replicas together admit
-- at most the key type's limit in any 60-second window. Counts are per key
-- and one-second slot of this server's clock; a window is the last 61
-- slots (any 60 s span touches at most 61). A grant is counted in the slot
-- it was made in; a replica reports the tokens it spent within a second or
-- so, and they move to the slot of the report, never earlier than the
-- spend, so a spend stays in the window at least as long as it should. A
-- spend not reported yet is still counted where it was granted, which
-- stays in the window as long as a lease (10 s) and a report's delay are
-- well under a minute.
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
-- {"k": key id, "l": limit, "w": tokens wanted, "rs": the slot of the
--  replica's current grant of the key, "rn": its tokens given back unspent,
--  "sp": its tokens spent since the last report}. For the whole batch at
-- once: lock the claimed keys' rows in key order (so that two batches never
-- wait on each other in a cycle), take refunds and spends off their grant's
-- slot, count spends in this slot, drop slots that left the window, then
-- (in a statement that sees all of that) count each key's window, grant at
-- most what is left, and say when a full window has room again.
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
    v_claims JSONB := p_claims::jsonb;
    v_keys TEXT[];
    v_now_ms BIGINT;
    v_slot BIGINT;
BEGIN
    SELECT array_agg(DISTINCT x.k) INTO v_keys
        FROM jsonb_to_recordset(v_claims) AS x(k TEXT);
    IF v_keys IS NULL THEN
        RETURN;
    END IF;
    INSERT INTO rate_keys (key_id) SELECT unnest(v_keys) ON CONFLICT DO NOTHING;
    PERFORM 1 FROM rate_keys k WHERE k.key_id = ANY (v_keys)
        ORDER BY k.key_id COLLATE "C" FOR UPDATE;
    -- The time after the locks: a grant counts from when it was made.
    v_now_ms := floor(extract(epoch FROM clock_timestamp()) * 1000);
    v_slot := v_now_ms / 1000;
    UPDATE rate_slots s SET n = greatest(s.n - r.back, 0)
        FROM (SELECT x.k, x.rs, sum(coalesce(x.rn, 0) + coalesce(x.sp, 0))::INTEGER AS back
              FROM jsonb_to_recordset(v_claims) AS x(k TEXT, rs BIGINT, rn INTEGER, sp INTEGER)
              GROUP BY x.k, x.rs) r
        WHERE r.back > 0 AND s.key_id = r.k AND s.slot = r.rs;
    INSERT INTO rate_slots AS s (key_id, slot, n)
        SELECT x.k, v_slot, sum(x.sp)::INTEGER
        FROM jsonb_to_recordset(v_claims) AS x(k TEXT, sp INTEGER)
        WHERE x.sp > 0 GROUP BY x.k
        ON CONFLICT (key_id, slot) DO UPDATE SET n = s.n + EXCLUDED.n;
    DELETE FROM rate_slots s WHERE s.key_id = ANY (v_keys) AND s.slot <= v_slot - 61;
    RETURN QUERY
    WITH c AS (
        SELECT x.k, min(x.l) AS l, sum(x.w)::INTEGER AS w
        FROM jsonb_to_recordset(v_claims) AS x(k TEXT, l INTEGER, w INTEGER)
        GROUP BY x.k
    ), u AS (
        SELECT c.k, c.l, c.w,
               coalesce((SELECT sum(s.n) FROM rate_slots s WHERE s.key_id = c.k), 0)::INTEGER AS used
        FROM c
    ), g AS (
        SELECT u.k, u.l, u.used, greatest(least(u.w, u.l - u.used), 0) AS gr FROM u
    ), ins AS (
        INSERT INTO rate_slots AS s (key_id, slot, n)
        SELECT g.k, v_slot, g.gr FROM g WHERE g.gr > 0
        ON CONFLICT (key_id, slot) DO UPDATE SET n = s.n + EXCLUDED.n
    )
    SELECT g.k, g.gr, v_slot, g.used + g.gr,
        CASE WHEN g.used + g.gr >= g.l THEN (
            -- Oldest slot first: room once enough of the window has left
            -- it. This statement does not see its own grant: add it.
            SELECT (w.slot + 61) * 1000 - v_now_ms
            FROM (SELECT a.slot, sum(a.n) OVER (ORDER BY a.slot) AS cum
                  FROM (SELECT s.slot, s.n FROM rate_slots s WHERE s.key_id = g.k
                        UNION ALL SELECT v_slot, g.gr WHERE g.gr > 0) a) w
            WHERE g.used + g.gr - w.cum < g.l
            ORDER BY w.slot LIMIT 1)
        END
    FROM g;
END
$$;
