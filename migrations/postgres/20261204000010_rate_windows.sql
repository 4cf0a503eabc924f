-- Shared rate limits, measured (BENCHMARKS.md, issue 17): with a row per
-- key and second, every grant and reported spend inserted or updated a row
-- of rate_slots and its two indexes, old slots were deleted, and
-- throughput fell round after round as dead rows piled up — on a server
-- with autovacuum off (as this project's test server is) they are never
-- taken. Now one row per key holds its whole window: the count of each of
-- its last 61 one-second slots, newest first, rewritten in place. Its one
-- index is on key_id, which never changes, and half of each page is left
-- free, so every rewrite is a heap-only (HOT) update whose old version the
-- next visit to the page prunes, with or without vacuum, and the index is
-- never touched.
DROP FUNCTION keywarden_rate_sync(TEXT);
DROP TABLE rate_slots;
DROP TABLE rate_keys;

-- UNLOGGED: counts live a minute; losing them in a crash is harmless and
-- not worth a WAL write per claim.
CREATE UNLOGGED TABLE rate_windows (
    key_id TEXT PRIMARY KEY,
    -- The slot (seconds since the epoch, by the store's clock) counts[1]
    -- is for; counts[i] is slot newest - i + 1.
    newest BIGINT NOT NULL,
    counts INTEGER[] NOT NULL
) WITH (fillfactor = 50);

-- One call per replica batch. p_claims is a JSON array of
-- {"k": key id, "l": limit, "w": tokens wanted, "rs": the slot of the
--  replica's current grant of the key, "rn": its tokens given back unspent,
--  "sp": its tokens spent and not reported yet}, each key at most once.
-- For each key, in key order (so that two batches never wait on each
-- other in a cycle): lock its row, move the window on to now, take refunds
-- and spends off their grant's slot, count spends in this slot and, when
-- it wants tokens, grant at most what is left of the window and say when
-- a full window has room again. A grant counts from when it was made: the
-- time is read after the row's lock.
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
    v_shift BIGINT;
    v_counts INTEGER[];
    v_i BIGINT;
    v_used INTEGER;
    v_left INTEGER;
BEGIN
    -- Each key once: a second row of one key would work from a stale copy
    -- of its window and undo the first's grant.
    IF EXISTS (SELECT 1 FROM jsonb_to_recordset(p_claims::jsonb) AS x(k TEXT)
               GROUP BY x.k HAVING count(*) > 1) THEN
        RAISE EXCEPTION 'keywarden_rate_sync: a key appears more than once in one batch';
    END IF;
    -- A prune waits for claims in flight and they for it
    -- (keywarden_rate_prune): a claim never loses its row between the
    -- insert below and its lock.
    PERFORM pg_advisory_xact_lock_shared(7107210917);
    INSERT INTO rate_windows (key_id, newest, counts)
        SELECT x.k, 0, '{}' FROM jsonb_to_recordset(p_claims::jsonb) AS x(k TEXT)
        ORDER BY x.k COLLATE "C"
        ON CONFLICT DO NOTHING;
    FOR c IN
        -- A limit missing is no tokens; a want, refund or spend is never
        -- below 0 or above the limit (no lease holds more).
        SELECT w.key_id, w.newest, w.counts, greatest(coalesce(x.l, 0), 0) AS l,
               least(greatest(coalesce(x.w, 0), 0), greatest(coalesce(x.l, 0), 0)) AS w,
               coalesce(x.rs, 0) AS rs,
               least(greatest(coalesce(x.rn, 0), 0), greatest(coalesce(x.l, 0), 0)) AS rn,
               least(greatest(coalesce(x.sp, 0), 0), greatest(coalesce(x.l, 0), 0)) AS sp
        FROM jsonb_to_recordset(p_claims::jsonb)
            AS x(k TEXT, l INTEGER, w INTEGER, rs BIGINT, rn INTEGER, sp INTEGER)
        JOIN rate_windows w ON w.key_id = x.k
        ORDER BY w.key_id COLLATE "C"
        FOR UPDATE OF w
    LOOP
        v_now_ms := floor(extract(epoch FROM clock_timestamp()) * 1000);
        v_slot := greatest(v_now_ms / 1000, c.newest);
        v_shift := v_slot - c.newest;
        IF v_shift >= 61 OR cardinality(c.counts) <> 61 THEN
            v_counts := array_fill(0, ARRAY[61]);
        ELSIF v_shift > 0 THEN
            v_counts := (array_fill(0, ARRAY[v_shift::INTEGER]) || c.counts)[1:61];
        ELSE
            v_counts := c.counts;
        END IF;
        -- Refunds and spends leave their grant's slot, if it is still in
        -- the window; spends count again from now.
        v_i := v_slot - c.rs + 1;
        IF c.rn + c.sp > 0 AND v_i BETWEEN 1 AND 61 THEN
            v_counts[v_i] := greatest(v_counts[v_i] - c.rn - c.sp, 0);
        END IF;
        v_counts[1] := v_counts[1] + c.sp;
        IF c.w > 0 THEN
            v_used := (SELECT sum(n) FROM unnest(v_counts) AS n);
            out_granted := greatest(least(c.w, c.l - v_used), 0);
            v_counts[1] := v_counts[1] + out_granted;
            v_used := v_used + out_granted;
            out_room_in_ms := NULL;
            IF v_used >= c.l THEN
                -- Oldest slot first: room once enough of the window has
                -- left it.
                v_left := v_used;
                FOR v_i IN REVERSE 61..1 LOOP
                    v_left := v_left - v_counts[v_i];
                    IF v_left < c.l THEN
                        out_room_in_ms := (v_slot - v_i + 1 + 61) * 1000 - v_now_ms;
                        EXIT;
                    END IF;
                END LOOP;
            END IF;
            out_key := c.key_id;
            out_slot := v_slot;
            out_used := v_used;
            RETURN NEXT;
        END IF;
        UPDATE rate_windows SET newest = v_slot, counts = v_counts WHERE key_id = c.key_id;
    END LOOP;
END
$$;

-- Drops the rows of keys not counted for a minute (their windows are
-- empty) and returns how many. Exclusive against claims (see above).
CREATE FUNCTION keywarden_rate_prune()
RETURNS BIGINT
LANGUAGE plpgsql AS $$
DECLARE
    v_dropped BIGINT;
BEGIN
    PERFORM pg_advisory_xact_lock(7107210917);
    DELETE FROM rate_windows
        WHERE newest <= floor(extract(epoch FROM clock_timestamp())) - 61;
    GET DIAGNOSTICS v_dropped = ROW_COUNT;
    RETURN v_dropped;
END
$$;
