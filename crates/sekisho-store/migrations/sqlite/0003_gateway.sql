-- Version 3: SOCKS5 gateways. A gateway is a service of protocol `socks`; its egress goes straight
-- from the relay (no agent) or through a back agent, so `services.agent_id` becomes optional.
-- Service policies gain tenant-kept domain lists.
--
-- SQLite cannot drop NOT NULL, so `services` is rebuilt. Migrations run inside a transaction, where
-- foreign keys cannot be switched off; they are deferred instead. Dropping `services` deletes its
-- rows (cascading to `service_policies`), and routes point nowhere until the same rows are back in
-- the new `services`; policies are put back from a copy. Any reference still broken fails the commit.
PRAGMA defer_foreign_keys = ON;
CREATE TEMP TABLE services_keep AS SELECT * FROM services;
CREATE TEMP TABLE policies_keep AS SELECT * FROM service_policies;
DROP TABLE services;
CREATE TABLE services (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL DEFAULT 'default',
    name        TEXT NOT NULL,
    agent_id    TEXT REFERENCES agents(id),
    target      TEXT NOT NULL,
    protocol    TEXT NOT NULL,
    edge_listen TEXT,
    created_at  BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);
INSERT INTO services (id, tenant_id, name, agent_id, target, protocol, edge_listen, created_at)
    SELECT id, tenant_id, name, agent_id, target, protocol, edge_listen, created_at FROM services_keep;
INSERT INTO service_policies (service_id, tenant_id, required, deny, updated_at, updated_by)
    SELECT service_id, tenant_id, required, deny, updated_at, updated_by FROM policies_keep;
DROP TABLE services_keep;
DROP TABLE policies_keep;
ALTER TABLE service_policies ADD COLUMN allow_domains TEXT NOT NULL DEFAULT '[]';
ALTER TABLE service_policies ADD COLUMN deny_domains TEXT NOT NULL DEFAULT '[]';
