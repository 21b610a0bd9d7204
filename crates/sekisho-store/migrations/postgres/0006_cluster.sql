-- Version 6: relays sharing one database (a cluster). Every change to the topology or to a
-- policy advances this counter; each relay polls it and reloads what it serves when another
-- relay has changed something.
CREATE TABLE cluster_state (
    id         BIGINT PRIMARY KEY,
    generation BIGINT NOT NULL
);
INSERT INTO cluster_state (id, generation) VALUES (1, 0);
