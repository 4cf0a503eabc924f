-- One row for the checks of one key (or unknown key), caller, outcome and
-- user agent within a second of the clock (issue 17): `requests` is how
-- many, `at_ms` the first one's time and `at_ms + span_ms` the last one's.
-- Rows written before this hold one check each, which the defaults say.
ALTER TABLE key_usage ADD COLUMN requests INTEGER NOT NULL DEFAULT 1;
ALTER TABLE key_usage ADD COLUMN span_ms INTEGER NOT NULL DEFAULT 0;
