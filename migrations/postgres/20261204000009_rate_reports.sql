-- Shared rate limits, measured (BENCHMARKS.md, issue 17): each replica's
-- one-second report carried the spends of every key it serves in one
-- statement that locked all of those keys, counted all of their windows
-- and deleted their old slots, so reports and claims of two replicas
-- queued behind each other until throughput collapsed. Reports now come
-- in batches of a few hundred keys (src/server/rate_limit.rs) and, wanting
-- no tokens, only move counts: they still lock their keys in key order
-- (so that claims and reports never wait on each other in a cycle), but
-- count no windows, delete nothing and return nothing. Claims (batches of
-- the keys that want tokens) are as before, and count only the window's
-- 61 slots.
CREATE OR REPLACE FUNCTION keywarden_rate_sync(p_claims TEXT)
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
    v_wants BOOLEAN;
    v_now_ms BIGINT;
    v_slot BIGINT;
BEGIN
    SELECT array_agg(DISTINCT x.k), coalesce(bool_or(x.w > 0), false) INTO v_keys, v_wants
        FROM jsonb_to_recordset(v_claims) AS x(k TEXT, w INTEGER);
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
              GROUP BY x.k, x.rs ORDER BY x.k COLLATE "C", x.rs) r
        WHERE r.back > 0 AND s.key_id = r.k AND s.slot = r.rs;
    INSERT INTO rate_slots AS s (key_id, slot, n)
        SELECT x.k, v_slot, sum(x.sp)::INTEGER
        FROM jsonb_to_recordset(v_claims) AS x(k TEXT, sp INTEGER)
        WHERE x.sp > 0 GROUP BY x.k ORDER BY x.k COLLATE "C"
        ON CONFLICT (key_id, slot) DO UPDATE SET n = s.n + EXCLUDED.n;
    IF NOT v_wants THEN
        RETURN;
    END IF;
    DELETE FROM rate_slots s WHERE s.key_id = ANY (v_keys) AND s.slot <= v_slot - 61;
    RETURN QUERY
    WITH c AS (
        SELECT x.k, min(x.l) AS l, sum(x.w)::INTEGER AS w
        FROM jsonb_to_recordset(v_claims) AS x(k TEXT, l INTEGER, w INTEGER)
        GROUP BY x.k
    ), u AS (
        SELECT c.k, c.l, c.w,
               coalesce((SELECT sum(s.n) FROM rate_slots s
                         WHERE s.key_id = c.k AND s.slot > v_slot - 61), 0)::INTEGER AS used
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
                  FROM (SELECT s.slot, s.n FROM rate_slots s
                        WHERE s.key_id = g.k AND s.slot > v_slot - 61
                        UNION ALL SELECT v_slot, g.gr WHERE g.gr > 0) a) w
            WHERE g.used + g.gr - w.cum < g.l
            ORDER BY w.slot LIMIT 1)
        END
    FROM g;
END
$$;
