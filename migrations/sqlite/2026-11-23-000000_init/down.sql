-- Drops everything up.sql created, children before parents.
DROP TABLE pending_interactions;
DROP TABLE sessions;
DROP TABLE signing_keys;
DROP TABLE consents;
DROP TABLE denied_access_tokens;
DROP TABLE refresh_tokens;
DROP TABLE refresh_families;
DROP TABLE authorization_codes;
DROP TABLE federated_identities;
DROP TABLE users;
DROP TABLE clients;
