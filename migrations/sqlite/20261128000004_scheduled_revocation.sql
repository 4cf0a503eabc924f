-- A revocation in the future (rotation with a grace period) is scheduled:
-- an immediate revocation may bring it forward; a revocation that has
-- happened is never moved, whatever clock a later caller reads.
ALTER TABLE keys ADD COLUMN revocation_scheduled INTEGER NOT NULL DEFAULT 0;
