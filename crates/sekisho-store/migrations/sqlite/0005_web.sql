-- Version 5: browser access and the web console.
-- A service may be published at a browser hostname (`<service>.<tenant>.<web domain>`) behind
-- the Sekisho login. Console and browser sessions are API keys with an idle timeout; a browser
-- session is bound to one service host and belongs to the console session that minted it, so a
-- logout ends both.
ALTER TABLE services ADD COLUMN browser BIGINT NOT NULL DEFAULT 0;
ALTER TABLE api_keys ADD COLUMN idle_ms BIGINT;
ALTER TABLE api_keys ADD COLUMN parent_id TEXT;
ALTER TABLE api_keys ADD COLUMN bound_host TEXT;
-- How a session key's user proved who they are (`password`, `password+totp`, `oidc`); NULL for
-- keys made with the API. Only TOTP and SSO sessions open the console and browser hosts.
ALTER TABLE api_keys ADD COLUMN auth_method TEXT;
CREATE INDEX api_keys_parent ON api_keys (parent_id);

-- A tenant's OpenID Connect provider, an alternative to local passwords for web sign-in. The
-- client secret is sealed with the relay's master key.
CREATE TABLE oidc_providers (
    tenant_id      TEXT PRIMARY KEY,
    issuer         TEXT NOT NULL,
    client_id      TEXT NOT NULL,
    client_secret  TEXT NOT NULL,
    username_claim TEXT NOT NULL DEFAULT 'preferred_username',
    label          TEXT NOT NULL DEFAULT '',
    updated_at     BIGINT NOT NULL
);
