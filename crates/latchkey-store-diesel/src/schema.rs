//! The diesel view of the schema, shared by Postgres and SQLite.
//!
//! Both migration trees (`migrations/postgres`, `migrations/sqlite`) create
//! exactly these tables and columns, with portable types only: `BigInt` unix
//! seconds for timestamps, `Binary` for SHA-256 hashes and encrypted keys,
//! `Text` for identifiers, JSON and space-joined scope lists, `Bool` for
//! flags. Keep this file, both `up.sql` files and `rows.rs` in step.

diesel::table! {
    /// Registered OAuth clients.
    clients (client_id) {
        client_id -> Text,
        secret_hash -> Nullable<Binary>,
        origin -> Text,
        metadata -> Text,
        created_at -> BigInt,
        expires_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    /// Local users; `email_lower` carries the case-insensitive uniqueness.
    users (user_id) {
        user_id -> Text,
        email -> Text,
        email_lower -> Text,
        password_hash -> Nullable<Text>,
        disabled -> Bool,
        created_at -> BigInt,
    }
}

diesel::table! {
    /// Upstream identities linked to users.
    federated_identities (issuer, subject) {
        issuer -> Text,
        subject -> Text,
        user_id -> Text,
        email -> Nullable<Text>,
        created_at -> BigInt,
    }
}

diesel::table! {
    /// Authorization codes by hash, with the access token their exchange
    /// issued.
    authorization_codes (code_hash) {
        code_hash -> Binary,
        client_id -> Text,
        user_id -> Text,
        redirect_uri -> Text,
        code_challenge -> Text,
        scopes -> Text,
        resource -> Nullable<Text>,
        family_id -> Text,
        auth_time -> BigInt,
        issued_at -> BigInt,
        expires_at -> BigInt,
        consumed_at -> Nullable<BigInt>,
        access_token_jti -> Nullable<Text>,
        access_token_expires_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    /// Refresh-token families (one per authorization grant).
    refresh_families (family_id) {
        family_id -> Text,
        client_id -> Text,
        user_id -> Text,
        resource -> Nullable<Text>,
        scopes -> Text,
        created_at -> BigInt,
        absolute_expires_at -> BigInt,
        revoked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    /// Refresh tokens by hash.
    refresh_tokens (token_hash) {
        token_hash -> Binary,
        family_id -> Text,
        scopes -> Text,
        issued_at -> BigInt,
        idle_expires_at -> BigInt,
        used_at -> Nullable<BigInt>,
        access_token_jti -> Nullable<Text>,
        access_token_expires_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    /// The access-token deny-list, by `jti`.
    denied_access_tokens (jti) {
        jti -> Text,
        expires_at -> BigInt,
    }
}

diesel::table! {
    /// Remembered consent per user, client and resource.
    consents (user_id, client_id, resource) {
        user_id -> Text,
        client_id -> Text,
        resource -> Text,
        scopes -> Text,
        granted_at -> BigInt,
        expires_at -> BigInt,
        last_used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    /// Token-signing keys.
    signing_keys (kid) {
        kid -> Text,
        alg -> Text,
        private_key_encrypted -> Binary,
        public_jwk -> Text,
        state -> Text,
        created_at -> BigInt,
        activated_at -> Nullable<BigInt>,
        retired_at -> Nullable<BigInt>,
        not_after -> Nullable<BigInt>,
    }
}

diesel::table! {
    /// Browser sessions by hash.
    sessions (session_hash) {
        session_hash -> Binary,
        user_id -> Text,
        auth_time -> BigInt,
        created_at -> BigInt,
        last_seen_at -> BigInt,
        idle_expires_at -> BigInt,
        absolute_expires_at -> BigInt,
    }
}

diesel::table! {
    /// Short-lived pending interactions by hash.
    pending_interactions (pending_hash) {
        pending_hash -> Binary,
        kind -> Text,
        payload -> Text,
        expires_at -> BigInt,
    }
}

diesel::joinable!(federated_identities -> users (user_id));
diesel::joinable!(authorization_codes -> clients (client_id));
diesel::joinable!(refresh_families -> clients (client_id));
diesel::joinable!(refresh_tokens -> refresh_families (family_id));
diesel::joinable!(consents -> clients (client_id));
diesel::joinable!(sessions -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    clients,
    users,
    federated_identities,
    authorization_codes,
    refresh_families,
    refresh_tokens,
    denied_access_tokens,
    consents,
    signing_keys,
    sessions,
    pending_interactions,
);
