-- Latchkey's schema, Postgres flavour. The SQLite migration mirrors it
-- column for column; crates/latchkey-store-diesel/src/schema.rs is the one
-- diesel view of both.
--
-- Conventions: timestamps are BIGINT unix seconds (UTC); SHA-256 hashes and
-- encrypted keys are BYTEA; scope lists are TEXT joined by single spaces
-- (the empty list is ''); client metadata is JSON text, opaque here. Every
-- TEXT column uses the "C" collation: identifiers compare and sort bytewise
-- (Unicode code-point order, as SQLite's BINARY collation does) whatever the
-- database's locale, and their indexes need no locale-aware comparisons.

CREATE TABLE clients (
    client_id   TEXT COLLATE "C" PRIMARY KEY,
    secret_hash BYTEA,
    origin      TEXT COLLATE "C" NOT NULL CHECK (origin IN ('admin', 'dynamic', 'metadata_document')),
    metadata    TEXT COLLATE "C" NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT
);
CREATE INDEX clients_created_at_idx ON clients (created_at, client_id);

CREATE TABLE users (
    user_id       TEXT COLLATE "C" PRIMARY KEY,
    email         TEXT COLLATE "C" NOT NULL,
    -- Lowercased by the store, so that UNIQUE makes emails unique
    -- case-insensitively on every backend.
    email_lower   TEXT COLLATE "C" NOT NULL UNIQUE,
    password_hash TEXT COLLATE "C",
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    BIGINT NOT NULL
);
CREATE INDEX users_created_at_idx ON users (created_at, user_id);

CREATE TABLE federated_identities (
    issuer     TEXT COLLATE "C" NOT NULL,
    subject    TEXT COLLATE "C" NOT NULL,
    user_id    TEXT COLLATE "C" NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    email      TEXT COLLATE "C",
    created_at BIGINT NOT NULL,
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX federated_identities_user_id_idx ON federated_identities (user_id);

CREATE TABLE authorization_codes (
    code_hash               BYTEA PRIMARY KEY,
    client_id               TEXT COLLATE "C" NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    user_id                 TEXT COLLATE "C" NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    redirect_uri            TEXT COLLATE "C" NOT NULL,
    code_challenge          TEXT COLLATE "C" NOT NULL,
    scopes                  TEXT COLLATE "C" NOT NULL,
    resource                TEXT COLLATE "C",
    family_id               TEXT COLLATE "C" NOT NULL,
    auth_time               BIGINT NOT NULL,
    issued_at               BIGINT NOT NULL,
    expires_at              BIGINT NOT NULL,
    consumed_at             BIGINT,
    access_token_jti        TEXT COLLATE "C",
    access_token_expires_at BIGINT
)
-- Consuming a code updates only columns no index covers; free space on each
-- page lets that update stay on the page (a HOT update) instead of writing a
-- new entry into every index.
WITH (fillfactor = 80);
CREATE INDEX authorization_codes_client_id_idx ON authorization_codes (client_id);
CREATE INDEX authorization_codes_user_id_idx ON authorization_codes (user_id);
CREATE INDEX authorization_codes_family_id_idx ON authorization_codes (family_id);
CREATE INDEX authorization_codes_expires_at_idx ON authorization_codes (expires_at);

CREATE TABLE refresh_families (
    family_id           TEXT COLLATE "C" PRIMARY KEY,
    client_id           TEXT COLLATE "C" NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    user_id             TEXT COLLATE "C" NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    resource            TEXT COLLATE "C",
    scopes              TEXT COLLATE "C" NOT NULL,
    created_at          BIGINT NOT NULL,
    absolute_expires_at BIGINT NOT NULL,
    revoked_at          BIGINT
);
CREATE INDEX refresh_families_user_client_idx ON refresh_families (user_id, client_id);
CREATE INDEX refresh_families_client_id_idx ON refresh_families (client_id);
CREATE INDEX refresh_families_absolute_expires_at_idx ON refresh_families (absolute_expires_at);

CREATE TABLE refresh_tokens (
    token_hash              BYTEA PRIMARY KEY,
    family_id               TEXT COLLATE "C" NOT NULL REFERENCES refresh_families (family_id) ON DELETE CASCADE,
    scopes                  TEXT COLLATE "C" NOT NULL,
    issued_at               BIGINT NOT NULL,
    idle_expires_at         BIGINT NOT NULL,
    used_at                 BIGINT,
    access_token_jti        TEXT COLLATE "C",
    access_token_expires_at BIGINT
)
-- Rotation sets `used_at`, which no index covers: see authorization_codes.
WITH (fillfactor = 80);
CREATE INDEX refresh_tokens_family_id_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_idle_expires_at_idx ON refresh_tokens (idle_expires_at);

CREATE TABLE denied_access_tokens (
    jti        TEXT COLLATE "C" PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX denied_access_tokens_expires_at_idx ON denied_access_tokens (expires_at);

CREATE TABLE consents (
    user_id      TEXT COLLATE "C" NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    client_id    TEXT COLLATE "C" NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    -- The empty string when the grant has no resource, so that the key
    -- needs no NULL.
    resource     TEXT COLLATE "C" NOT NULL,
    scopes       TEXT COLLATE "C" NOT NULL,
    granted_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    PRIMARY KEY (user_id, client_id, resource)
);
CREATE INDEX consents_client_id_idx ON consents (client_id);
CREATE INDEX consents_expires_at_idx ON consents (expires_at);

CREATE TABLE signing_keys (
    kid                   TEXT COLLATE "C" PRIMARY KEY,
    alg                   TEXT COLLATE "C" NOT NULL,
    private_key_encrypted BYTEA NOT NULL,
    public_jwk            TEXT COLLATE "C" NOT NULL,
    state                 TEXT COLLATE "C" NOT NULL CHECK (state IN ('next', 'active', 'retired')),
    created_at            BIGINT NOT NULL,
    activated_at          BIGINT,
    retired_at            BIGINT,
    not_after             BIGINT
);
-- At most one active key, so that instances starting at once agree on it.
CREATE UNIQUE INDEX signing_keys_one_active_idx ON signing_keys (state) WHERE state = 'active';
CREATE INDEX signing_keys_created_at_idx ON signing_keys (created_at, kid);
CREATE INDEX signing_keys_retired_not_after_idx ON signing_keys (not_after) WHERE state = 'retired';

CREATE TABLE sessions (
    session_hash        BYTEA PRIMARY KEY,
    user_id             TEXT COLLATE "C" NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    auth_time           BIGINT NOT NULL,
    created_at          BIGINT NOT NULL,
    last_seen_at        BIGINT NOT NULL,
    idle_expires_at     BIGINT NOT NULL,
    absolute_expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);
CREATE INDEX sessions_idle_expires_at_idx ON sessions (idle_expires_at);
CREATE INDEX sessions_absolute_expires_at_idx ON sessions (absolute_expires_at);

CREATE TABLE pending_interactions (
    pending_hash BYTEA PRIMARY KEY,
    kind         TEXT COLLATE "C" NOT NULL,
    payload      TEXT COLLATE "C" NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX pending_interactions_expires_at_idx ON pending_interactions (expires_at);
