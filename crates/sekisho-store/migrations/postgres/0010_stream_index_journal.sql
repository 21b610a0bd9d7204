-- Version 10: the index of open streams kept by the database itself, in the statement that
-- inserts the events (one statement per batch instead of three: each is a round trip to the
-- database, paid by every new connection while its opening is committed).
CREATE FUNCTION audit_open_streams_follow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.stream_id <> '' THEN
        IF NEW.phase = 'opened' THEN
            INSERT INTO audit_open_streams (stream_id, relay, tenant_id, seq, at)
            VALUES (NEW.stream_id, split_part(NEW.stream_id, ':', 1), NEW.tenant_id, NEW.seq, NEW.at);
        ELSIF NEW.phase = 'closed' THEN
            DELETE FROM audit_open_streams WHERE stream_id = NEW.stream_id;
        END IF;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER audit_open_streams_follow AFTER INSERT ON audit_events
FOR EACH ROW EXECUTE FUNCTION audit_open_streams_follow();
-- Each relay's audit journal (events written to a file ahead of the database, so a new
-- connection does not wait for a transaction): the highest journal number whose event is
-- committed, moved in the same transaction as the events. A relay that starts commits the
-- journaled events above it.
CREATE TABLE audit_journal (
    relay TEXT PRIMARY KEY,
    upto  BIGINT NOT NULL
);
