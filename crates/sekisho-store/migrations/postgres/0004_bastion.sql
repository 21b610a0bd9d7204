-- Version 4: the SSH bastion. Users' SSH public keys, the sealed credentials and pinned host key
-- of SSH/Telnet targets, the TOTP replay guard, and session recordings (the sealed asciicast
-- itself lives in the data directory; this row is what search and the audit chain need).
ALTER TABLE users ADD COLUMN totp_last_step BIGINT;

CREATE TABLE user_ssh_keys (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name        TEXT NOT NULL DEFAULT '',
    public_key  TEXT NOT NULL,             -- OpenSSH "algorithm base64", comment dropped
    fingerprint TEXT NOT NULL,             -- SHA256:…
    created_at  BIGINT NOT NULL,
    UNIQUE (tenant_id, fingerprint)
);

CREATE TABLE ssh_targets (
    service_id   TEXT PRIMARY KEY REFERENCES services(id) ON DELETE CASCADE,
    tenant_id    TEXT NOT NULL,
    login        TEXT NOT NULL DEFAULT '',
    secret_kind  TEXT NOT NULL DEFAULT '', -- password | key | none
    secret       TEXT NOT NULL DEFAULT '', -- sealed with the relay's master key
    host_key     TEXT NOT NULL DEFAULT '', -- pinned; learnt on first use when empty
    updated_at   BIGINT NOT NULL
);

CREATE TABLE recordings (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    session_id  TEXT NOT NULL,             -- one SSH connection; its channels share it
    user_name   TEXT NOT NULL,
    target      TEXT NOT NULL,
    protocol    TEXT NOT NULL,             -- ssh | telnet
    kind        TEXT NOT NULL,             -- shell | exec | sftp | scp
    command     TEXT NOT NULL DEFAULT '',  -- the exec command, exactly
    source_ip   TEXT NOT NULL DEFAULT '',
    started_at  BIGINT NOT NULL,
    ended_at    BIGINT,
    bytes       BIGINT NOT NULL DEFAULT 0, -- plaintext asciicast size
    sha256      TEXT NOT NULL DEFAULT '',  -- of the plaintext asciicast, also in the audit event
    commands    TEXT NOT NULL DEFAULT '[]',-- JSON [{t, cmd}]
    files       TEXT NOT NULL DEFAULT '[]' -- JSON file operations
);
CREATE INDEX recordings_tenant_started ON recordings (tenant_id, started_at);
