-- Version 7: each access event keeps its decision's whole input (principal, groups, context,
-- policy version) as JSON, so a later dry run re-decides from what was known then.
ALTER TABLE audit_events ADD COLUMN input TEXT NOT NULL DEFAULT '';
