-- Latchkey's schema, SQLite flavour. It mirrors the Postgres migration
-- column for column; crates/latchkey-store-diesel/src/schema.rs is the one
-- diesel view of both.
--
-- Conventions: timestamps are INTEGER unix seconds (UTC); SHA-256 hashes and
-- encrypted keys are BLOB; booleans are INTEGER 0/1; scope lists are TEXT
-- joined by single spaces (the empty list is ''); client metadata is JSON
-- text, opaque here. Tables are STRICT (SQLite 3.37+) so that a value of the
-- wrong type is an error, as on Postgres. Foreign keys are enforced because
-- the store turns on PRAGMA foreign_keys on every connection.

CREATE TABLE clients (
    client_id   TEXT PRIMARY KEY,
    secret_hash BLOB,
    origin      TEXT NOT NULL CHECK (origin IN ('admin', 'dynamic', 'metadata_document')),
    metadata    TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER
) STRICT;
CREATE INDEX clients_created_at_idx ON clients (created_at, client_id);

CREATE TABLE users (
    user_id       TEXT PRIMARY KEY,
    email         TEXT NOT NULL,
    -- Lowercased by the store, so that UNIQUE makes emails unique
    -- case-insensitively on every backend.
    email_lower   TEXT NOT NULL UNIQUE,
    password_hash TEXT,
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at    INTEGER NOT NULL
) STRICT;
CREATE INDEX users_created_at_idx ON users (created_at, user_id);

CREATE TABLE federated_identities (
    issuer     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    email      TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (issuer, subject)
) STRICT;
CREATE INDEX federated_identities_user_id_idx ON federated_identities (user_id);

CREATE TABLE authorization_codes (
    code_hash               BLOB PRIMARY KEY,
    client_id               TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    user_id                 TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    redirect_uri            TEXT NOT NULL,
    code_challenge          TEXT NOT NULL,
    scopes                  TEXT NOT NULL,
    resource                TEXT,
    family_id               TEXT NOT NULL,
    auth_time               INTEGER NOT NULL,
    issued_at               INTEGER NOT NULL,
    expires_at              INTEGER NOT NULL,
    consumed_at             INTEGER,
    access_token_jti        TEXT,
    access_token_expires_at INTEGER
) STRICT;
CREATE INDEX authorization_codes_client_id_idx ON authorization_codes (client_id);
CREATE INDEX authorization_codes_user_id_idx ON authorization_codes (user_id);
CREATE INDEX authorization_codes_family_id_idx ON authorization_codes (family_id);
CREATE INDEX authorization_codes_expires_at_idx ON authorization_codes (expires_at);

CREATE TABLE refresh_families (
    family_id           TEXT PRIMARY KEY,
    client_id           TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    user_id             TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    resource            TEXT,
    scopes              TEXT NOT NULL,
    created_at          INTEGER NOT NULL,
    absolute_expires_at INTEGER NOT NULL,
    revoked_at          INTEGER
) STRICT;
CREATE INDEX refresh_families_user_client_idx ON refresh_families (user_id, client_id);
CREATE INDEX refresh_families_client_id_idx ON refresh_families (client_id);
CREATE INDEX refresh_families_absolute_expires_at_idx ON refresh_families (absolute_expires_at);

CREATE TABLE refresh_tokens (
    token_hash              BLOB PRIMARY KEY,
    family_id               TEXT NOT NULL REFERENCES refresh_families (family_id) ON DELETE CASCADE,
    scopes                  TEXT NOT NULL,
    issued_at               INTEGER NOT NULL,
    idle_expires_at         INTEGER NOT NULL,
    used_at                 INTEGER,
    access_token_jti        TEXT,
    access_token_expires_at INTEGER
) STRICT;
CREATE INDEX refresh_tokens_family_id_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_idle_expires_at_idx ON refresh_tokens (idle_expires_at);

CREATE TABLE denied_access_tokens (
    jti        TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX denied_access_tokens_expires_at_idx ON denied_access_tokens (expires_at);

CREATE TABLE consents (
    user_id      TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    client_id    TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    -- The empty string when the grant has no resource, so that the key
    -- needs no NULL.
    resource     TEXT NOT NULL,
    scopes       TEXT NOT NULL,
    granted_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    PRIMARY KEY (user_id, client_id, resource)
) STRICT;
CREATE INDEX consents_client_id_idx ON consents (client_id);
CREATE INDEX consents_expires_at_idx ON consents (expires_at);

CREATE TABLE signing_keys (
    kid                   TEXT PRIMARY KEY,
    alg                   TEXT NOT NULL,
    private_key_encrypted BLOB NOT NULL,
    public_jwk            TEXT NOT NULL,
    state                 TEXT NOT NULL CHECK (state IN ('next', 'active', 'retired')),
    created_at            INTEGER NOT NULL,
    activated_at          INTEGER,
    retired_at            INTEGER,
    not_after             INTEGER
) STRICT;
-- At most one active key, so that instances starting at once agree on it.
CREATE UNIQUE INDEX signing_keys_one_active_idx ON signing_keys (state) WHERE state = 'active';
CREATE INDEX signing_keys_created_at_idx ON signing_keys (created_at, kid);
CREATE INDEX signing_keys_retired_not_after_idx ON signing_keys (not_after) WHERE state = 'retired';

CREATE TABLE sessions (
    session_hash        BLOB PRIMARY KEY,
    user_id             TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    auth_time           INTEGER NOT NULL,
    created_at          INTEGER NOT NULL,
    last_seen_at        INTEGER NOT NULL,
    idle_expires_at     INTEGER NOT NULL,
    absolute_expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX sessions_user_id_idx ON sessions (user_id);
CREATE INDEX sessions_idle_expires_at_idx ON sessions (idle_expires_at);
CREATE INDEX sessions_absolute_expires_at_idx ON sessions (absolute_expires_at);

CREATE TABLE pending_interactions (
    pending_hash BLOB PRIMARY KEY,
    kind         TEXT NOT NULL,
    payload      TEXT NOT NULL,
    expires_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX pending_interactions_expires_at_idx ON pending_interactions (expires_at);
