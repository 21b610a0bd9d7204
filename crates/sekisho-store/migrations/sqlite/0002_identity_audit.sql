-- Sekisho store, version 2: tenants, users, groups, scoped API keys, service policies and the
-- hash-chained audit log (which replaces the tunnel core's plain event table).
CREATE TABLE tenants (
    id                 TEXT PRIMARY KEY,
    name               TEXT NOT NULL UNIQUE,
    max_agents         BIGINT NOT NULL,
    retention_days     BIGINT NOT NULL,
    utc_offset_minutes BIGINT NOT NULL,
    created_at         BIGINT NOT NULL
);
INSERT INTO tenants (id, name, max_agents, retention_days, utc_offset_minutes, created_at)
    VALUES ('default', 'default', 1000, 365, 540, 0);

CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants(id),
    name           TEXT NOT NULL,
    display_name   TEXT NOT NULL DEFAULT '',
    password_hash  TEXT NOT NULL,          -- argon2id PHC string
    totp_secret    TEXT,                   -- sealed with the relay's master key
    totp_enabled   BIGINT NOT NULL DEFAULT 0,
    failed_logins  BIGINT NOT NULL DEFAULT 0,
    locked_until   BIGINT,
    disabled_at    BIGINT,
    created_at     BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE recovery_codes (
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash  TEXT NOT NULL,              -- SHA-256 of an 80-bit code, hex
    used_at    BIGINT,
    PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE user_groups (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,             -- admin | operator | auditor | member
    created_at  BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE group_members (
    group_id  TEXT NOT NULL REFERENCES user_groups(id) ON DELETE CASCADE,
    user_id   TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);

ALTER TABLE api_keys ADD COLUMN user_id TEXT;
ALTER TABLE api_keys ADD COLUMN allowed_ips TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN last_used_at BIGINT;
ALTER TABLE api_keys ADD COLUMN revoked_at BIGINT;
ALTER TABLE agents ADD COLUMN owner_user_id TEXT;
ALTER TABLE enrollment_tokens ADD COLUMN owner_user_id TEXT;

CREATE TABLE service_policies (
    service_id   TEXT PRIMARY KEY REFERENCES services(id) ON DELETE CASCADE,
    tenant_id    TEXT NOT NULL,
    required     TEXT NOT NULL,            -- JSON array of Cedar conditions
    deny         TEXT NOT NULL,            -- JSON array of Cedar conditions
    updated_at   BIGINT NOT NULL,
    updated_by   TEXT NOT NULL
);

DROP TABLE events;

CREATE TABLE audit_events (
    tenant_id    TEXT NOT NULL,
    seq          BIGINT NOT NULL,          -- 1, 2, 3 … per tenant, no gaps
    at           BIGINT NOT NULL,          -- ms since the epoch
    kind         TEXT NOT NULL,
    subject_kind TEXT NOT NULL,
    subject      TEXT NOT NULL,
    path         TEXT NOT NULL,
    target       TEXT NOT NULL,
    decision     TEXT NOT NULL,
    reason       TEXT NOT NULL,
    policy_id    TEXT NOT NULL,
    auth_method  TEXT NOT NULL,
    source_ip    TEXT NOT NULL,
    country      TEXT NOT NULL,
    bytes_in     BIGINT,
    bytes_out    BIGINT,
    duration_ms  BIGINT,
    detail       TEXT NOT NULL,
    prev_hash    TEXT NOT NULL,            -- hash of event seq-1 (or of the pruning anchor)
    hash         TEXT NOT NULL,            -- SHA-256 over prev_hash and this event, hex
    PRIMARY KEY (tenant_id, seq)
);
CREATE INDEX audit_events_at ON audit_events (tenant_id, at);

CREATE TABLE audit_checkpoints (
    tenant_id  TEXT NOT NULL,
    seq        BIGINT NOT NULL,
    hash       TEXT NOT NULL,
    at         BIGINT NOT NULL,
    kind       TEXT NOT NULL,              -- periodic | prune
    key_id     TEXT NOT NULL,              -- hex of the signing key's public half
    signature  TEXT NOT NULL,              -- Ed25519 over the canonical checkpoint, hex
    PRIMARY KEY (tenant_id, seq, kind)
);
