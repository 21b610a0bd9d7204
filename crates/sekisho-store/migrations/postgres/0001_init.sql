-- Sekisho store, version 1. Every object belongs to a tenant; the tunnel core uses `default`.
CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL DEFAULT 'default',
    name        TEXT NOT NULL,
    key_hash    TEXT NOT NULL UNIQUE,  -- SHA-256 of the 256-bit key, hex
    scopes      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT
);

CREATE TABLE enrollment_tokens (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL DEFAULT 'default',
    token_hash  TEXT NOT NULL UNIQUE,  -- SHA-256 of the one-time secret, hex
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,
    site        TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT,
    agent_id    TEXT
);

CREATE TABLE agents (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL DEFAULT 'default',
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,
    site        TEXT NOT NULL DEFAULT '',
    sign_pub    TEXT NOT NULL,
    noise_pub   TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    last_seen   BIGINT,
    last_addr   TEXT,
    version     TEXT,
    hostname    TEXT,
    revoked_at  BIGINT
);

CREATE TABLE services (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL DEFAULT 'default',
    name        TEXT NOT NULL,
    agent_id    TEXT NOT NULL REFERENCES agents(id),
    target      TEXT NOT NULL,
    protocol    TEXT NOT NULL,
    edge_listen TEXT,
    created_at  BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE routes (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL DEFAULT 'default',
    front_agent_id TEXT NOT NULL REFERENCES agents(id),
    listen        TEXT NOT NULL,
    service_id    TEXT NOT NULL REFERENCES services(id),
    created_at    BIGINT NOT NULL
);
-- Two routes of one agent may not share a fixed address; port 0 ("any free port") may repeat,
-- so uniqueness is checked by the admin API rather than here.
CREATE INDEX routes_agent ON routes (front_agent_id);

CREATE TABLE events (
    id          BIGSERIAL PRIMARY KEY,
    tenant_id   TEXT NOT NULL DEFAULT 'default',
    at          BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    agent_id    TEXT,
    subject     TEXT,
    target      TEXT,
    decision    TEXT NOT NULL,
    reason      TEXT NOT NULL,
    source      TEXT,
    bytes_up    BIGINT,
    bytes_down  BIGINT
);
CREATE INDEX events_at ON events (tenant_id, at);
