-- Version 12: how many agents were online, sampled every few minutes by each relay (the agents
-- connected to it), for the dashboard's chart; kept eight days.
CREATE TABLE agent_samples (
    tenant_id TEXT NOT NULL,
    relay TEXT NOT NULL,
    at BIGINT NOT NULL,
    online BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, relay, at)
);
CREATE INDEX agent_samples_at ON agent_samples (at);
