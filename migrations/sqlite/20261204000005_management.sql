-- OpenRouter's key management: management keys, disabled keys (who and
-- when), spending windows that reset, and keys deleted through the API
-- (revoked and hidden from it; the row stays so a later leak report still
-- finds the key).
ALTER TABLE keys ADD COLUMN is_management INTEGER NOT NULL DEFAULT 0;
ALTER TABLE keys ADD COLUMN limit_reset TEXT CHECK (limit_reset IN ('daily', 'weekly', 'monthly'));
ALTER TABLE keys ADD COLUMN include_byok_in_limit INTEGER NOT NULL DEFAULT 0;
ALTER TABLE keys ADD COLUMN disabled_at INTEGER;
ALTER TABLE keys ADD COLUMN disabled_by TEXT;
ALTER TABLE keys ADD COLUMN updated_at INTEGER;
ALTER TABLE keys ADD COLUMN deleted_at INTEGER;
-- Spend in the current UTC day, week (from Monday) and month, as of the
-- last spend at usage_at: a window that has rolled over since reads as 0.
ALTER TABLE keys ADD COLUMN usage_daily REAL NOT NULL DEFAULT 0;
ALTER TABLE keys ADD COLUMN usage_weekly REAL NOT NULL DEFAULT 0;
ALTER TABLE keys ADD COLUMN usage_monthly REAL NOT NULL DEFAULT 0;
ALTER TABLE keys ADD COLUMN usage_at INTEGER;
-- The management API lists keys newest first: created_at has whole
-- seconds, so ties are broken by the order of insertion (SQLite's rowid).
CREATE INDEX keys_listing ON keys (created_at DESC);
