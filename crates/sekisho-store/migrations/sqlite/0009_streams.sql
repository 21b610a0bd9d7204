-- Version 9: a stream's evidence in two events. An allowed stream (tunnel, edge port, SSH,
-- SOCKS, browser request) has an `opened` event, committed before its first byte is forwarded,
-- and a `closed` event with its bytes and duration; both carry the stream's id.
ALTER TABLE audit_events ADD COLUMN stream_id TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_events ADD COLUMN phase TEXT NOT NULL DEFAULT '';
CREATE INDEX audit_events_stream ON audit_events (tenant_id, stream_id);
-- The streams opened and not yet closed, kept in the same transaction as their events (an index
-- of the chain, not evidence: `audit verify` finds the same from the chain itself). A relay that
-- starts again closes its own streams found here as `open_at_crash`.
CREATE TABLE audit_open_streams (
    stream_id TEXT PRIMARY KEY,
    relay     TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    seq       BIGINT NOT NULL,
    at        BIGINT NOT NULL
);
CREATE INDEX audit_open_streams_relay ON audit_open_streams (relay);
CREATE INDEX audit_open_streams_tenant ON audit_open_streams (tenant_id, at);
