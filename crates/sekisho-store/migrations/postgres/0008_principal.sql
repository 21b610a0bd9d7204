-- Version 8: the principal of an event in its own fields (the user acted for, and the agent or
-- device it came through), so a search by user finds what was done through that user's devices.
ALTER TABLE audit_events ADD COLUMN principal_user TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_events ADD COLUMN principal_agent TEXT NOT NULL DEFAULT '';
CREATE INDEX audit_events_principal_user ON audit_events (tenant_id, principal_user);
