-- Version 3: SOCKS5 gateways. A gateway is a service of protocol `socks`; its egress goes straight
-- from the relay (no agent) or through a back agent, so `services.agent_id` becomes optional.
-- Service policies gain tenant-kept domain lists.
ALTER TABLE services ALTER COLUMN agent_id DROP NOT NULL;
ALTER TABLE service_policies ADD COLUMN allow_domains TEXT NOT NULL DEFAULT '[]';
ALTER TABLE service_policies ADD COLUMN deny_domains TEXT NOT NULL DEFAULT '[]';
