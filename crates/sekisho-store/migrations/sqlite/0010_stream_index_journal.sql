-- Version 10: the index of open streams kept by the database itself, in the statement that
-- inserts the events (one statement per batch instead of three: each is a round trip to the
-- database's thread, paid by every new connection while its opening is committed).
CREATE TRIGGER audit_stream_opened AFTER INSERT ON audit_events
WHEN NEW.phase = 'opened' AND NEW.stream_id <> ''
BEGIN
    INSERT INTO audit_open_streams (stream_id, relay, tenant_id, seq, at)
    VALUES (NEW.stream_id, substr(NEW.stream_id, 1, instr(NEW.stream_id || ':', ':') - 1), NEW.tenant_id, NEW.seq, NEW.at);
END;
CREATE TRIGGER audit_stream_closed AFTER INSERT ON audit_events
WHEN NEW.phase = 'closed' AND NEW.stream_id <> ''
BEGIN
    DELETE FROM audit_open_streams WHERE stream_id = NEW.stream_id;
END;
-- Each relay's audit journal (events written to a file ahead of the database, so a new
-- connection does not wait for a transaction): the highest journal number whose event is
-- committed, moved in the same transaction as the events. A relay that starts commits the
-- journaled events above it.
CREATE TABLE audit_journal (
    relay TEXT PRIMARY KEY,
    upto  BIGINT NOT NULL
);
