//! Contract checks for [`ClientStore`](crate::ClientStore): exact round
//! trips, ordering, upsert that keeps grants, and the delete cascade.

use std::sync::Arc;

use super::{Names, assert_conflict, at, client, consent, seed_client_and_user, seed_grant, user};
use crate::{ClientOrigin, ClientRecord, SecretHash, Store};

/// `insert_client` stores, `find_client` returns it exactly, and a second
/// insert of the same id is a conflict that changes nothing.
pub async fn clients_insert_find_and_conflict(store: Arc<dyn Store>) {
    let names = Names::new("clients_insert_find_and_conflict");
    let original = ClientRecord {
        secret_hash: Some(names.secret("client-secret")),
        origin: ClientOrigin::Admin,
        expires_at: Some(at(3600)),
        ..client(&names.id("client"), at(0))
    };
    store
        .insert_client(&original)
        .await
        .expect("insert_client of a new client failed");
    let found = store.find_client(&original.client_id).await.unwrap();
    assert_eq!(
        found.as_ref(),
        Some(&original),
        "find_client did not return the inserted client exactly"
    );
    assert_eq!(
        store
            .find_client(&names.id("no-such-client"))
            .await
            .unwrap(),
        None,
        "find_client of an unknown id must be None"
    );

    let duplicate = ClientRecord {
        secret_hash: None,
        origin: ClientOrigin::Dynamic,
        metadata: serde_json::json!({"client_name": "impostor"}),
        ..original.clone()
    };
    assert_conflict(
        store.insert_client(&duplicate).await,
        "client",
        "insert_client with an existing client_id",
    );
    assert_eq!(
        store
            .find_client(&original.client_id)
            .await
            .unwrap()
            .as_ref(),
        Some(&original),
        "a conflicting insert_client must leave the existing client unchanged"
    );
}

/// Every field survives storage exactly: JSON metadata (nested, unicode,
/// escapes, numbers), `secret_hash` `None`/`Some`, `expires_at`
/// `None`/`Some`, and every origin.
pub async fn clients_round_trip_every_field(store: Arc<dyn Store>) {
    let names = Names::new("clients_round_trip_every_field");
    let public = ClientRecord {
        metadata: serde_json::json!({
            "client_name": "Ünïcödé クライアント 🚀",
            "redirect_uris": ["http://127.0.0.1:33418/cb", "https://app.example/cb?x=1&y=\"2\""],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
            "nested": {"deeper": {"deepest": [1, -2, 3.5, true, false, null, {}, []]}},
            "big": 9_007_199_254_740_993_u64,
            "negative": -42,
            "escapes": "tab\tnewline\nquote\"backslash\\nul\u{0}",
            "empty_object": {},
            "empty_array": [],
            "null_value": null,
        }),
        ..client(&names.id("public"), at(0))
    };
    let document = ClientRecord {
        origin: ClientOrigin::MetadataDocument,
        expires_at: Some(at(86_400)),
        ..client(
            &format!("https://app.example/{}/client.json?v=2", names.check),
            at(1),
        )
    };
    let confidential = ClientRecord {
        origin: ClientOrigin::Admin,
        secret_hash: Some(SecretHash::of("a client secret")),
        ..client(&names.id("confidential"), at(2))
    };
    for record in [&public, &document, &confidential] {
        store
            .insert_client(record)
            .await
            .expect("insert_client of a new client failed");
    }
    for record in [&public, &document, &confidential] {
        let found = store.find_client(&record.client_id).await.unwrap();
        assert_eq!(
            found.as_ref(),
            Some(record),
            "client {:?} did not round-trip exactly (metadata JSON, secret_hash, origin and \
             expires_at must come back as stored)",
            record.client_id
        );
    }
    assert_eq!(
        store.list_clients().await.unwrap(),
        vec![public, document, confidential],
        "list_clients must return the stored records exactly"
    );
}

/// `list_clients` orders by `created_at`, then `client_id` bytewise.
pub async fn clients_list_in_order(store: Arc<dyn Store>) {
    let names = Names::new("clients_list_in_order");
    assert_eq!(
        store.list_clients().await.unwrap(),
        Vec::<ClientRecord>::new(),
        "a fresh store must list no clients"
    );
    let c = client(&names.id("c"), at(5));
    let upper_b = client(&names.id("B"), at(10));
    let lower_a = client(&names.id("a"), at(10));
    let upper_a = client(&names.id("A"), at(20));
    for record in [&lower_a, &upper_a, &c, &upper_b] {
        store.insert_client(record).await.unwrap();
    }
    let listed: Vec<String> = store
        .list_clients()
        .await
        .unwrap()
        .into_iter()
        .map(|record| record.client_id)
        .collect();
    assert_eq!(
        listed,
        vec![
            c.client_id,
            upper_b.client_id,
            lower_a.client_id,
            upper_a.client_id
        ],
        "list_clients must order by created_at, then client_id compared bytewise ('B' < 'a', \
         as the C collation does)"
    );
}

/// `upsert_client` inserts a new client, replaces every field of an
/// existing one, and keeps the client's codes, refresh tokens and consents.
pub async fn clients_upsert_inserts_replaces_and_keeps_grants(store: Arc<dyn Store>) {
    let names = Names::new("clients_upsert_inserts_replaces_and_keeps_grants");
    let first = client(&names.id("client"), at(0));
    store
        .upsert_client(&first)
        .await
        .expect("upsert_client of a new client failed");
    assert_eq!(
        store.find_client(&first.client_id).await.unwrap().as_ref(),
        Some(&first),
        "upsert_client of a new id must insert it"
    );

    let person = user(&names.id("user"), &names.email("user"), at(0));
    store.insert_user(&person).await.unwrap();
    let grant = seed_grant(&*store, &names, "grant", &first.client_id, &person.user_id).await;
    let remembered = consent(&person.user_id, &first.client_id, "", at(2), at(9000));
    store.upsert_consent(&remembered).await.unwrap();

    let replacement = ClientRecord {
        client_id: first.client_id.clone(),
        secret_hash: Some(names.secret("new-secret")),
        origin: ClientOrigin::MetadataDocument,
        metadata: serde_json::json!({"client_name": "refreshed", "redirect_uris": []}),
        created_at: at(100),
        expires_at: Some(at(200)),
    };
    store
        .upsert_client(&replacement)
        .await
        .expect("upsert_client of an existing client failed");
    assert_eq!(
        store.find_client(&first.client_id).await.unwrap().as_ref(),
        Some(&replacement),
        "upsert_client must replace every field of the existing client"
    );
    assert_eq!(
        store.list_clients().await.unwrap().len(),
        1,
        "upsert_client of an existing id must not add a second client"
    );

    assert_eq!(
        store
            .find_code(&grant.code.code_hash)
            .await
            .unwrap()
            .as_ref(),
        Some(&grant.code),
        "upsert_client must keep the client's codes (do not delete and re-insert the client)"
    );
    let refresh = store.find_refresh(&grant.refresh_hash).await.unwrap();
    assert!(
        refresh.is_some(),
        "upsert_client must keep the client's refresh-token families and tokens"
    );
    assert_eq!(
        store
            .find_consent(&person.user_id, &first.client_id, "")
            .await
            .unwrap()
            .as_ref(),
        Some(&remembered),
        "upsert_client must keep the client's consents"
    );
}

/// `delete_client` removes the client with its codes, refresh-token
/// families (and their tokens) and consents, and nothing of other clients.
pub async fn clients_delete_cascades(store: Arc<dyn Store>) {
    let names = Names::new("clients_delete_cascades");
    let (doomed, person) = seed_client_and_user(&*store, &names).await;
    let kept = client(&names.id("kept-client"), at(-500));
    store.insert_client(&kept).await.unwrap();

    let doomed_grant = seed_grant(
        &*store,
        &names,
        "doomed",
        &doomed.client_id,
        &person.user_id,
    )
    .await;
    let kept_grant = seed_grant(&*store, &names, "kept", &kept.client_id, &person.user_id).await;
    let unused_code = super::code(
        names.secret("doomed/unused-code"),
        &doomed.client_id,
        &person.user_id,
        &names.id("doomed/unused-family"),
        at(60),
    );
    store.insert_code(&unused_code).await.unwrap();
    for resource in ["", "https://mcp.example.com/mcp"] {
        store
            .upsert_consent(&consent(
                &person.user_id,
                &doomed.client_id,
                resource,
                at(0),
                at(9000),
            ))
            .await
            .unwrap();
    }
    let kept_consent = consent(&person.user_id, &kept.client_id, "", at(0), at(9000));
    store.upsert_consent(&kept_consent).await.unwrap();

    assert!(
        store.delete_client(&doomed.client_id).await.unwrap(),
        "delete_client of an existing client must return true"
    );
    assert_eq!(
        store.find_client(&doomed.client_id).await.unwrap(),
        None,
        "a deleted client must not be found"
    );
    for hash in [&doomed_grant.code.code_hash, &unused_code.code_hash] {
        assert_eq!(
            store.find_code(hash).await.unwrap(),
            None,
            "delete_client must cascade to the client's codes"
        );
    }
    assert_eq!(
        store
            .find_refresh(&doomed_grant.refresh_hash)
            .await
            .unwrap(),
        None,
        "delete_client must cascade to the client's refresh-token families and their tokens"
    );
    assert!(
        !store
            .revoke_family(&doomed_grant.code.family_id, at(2))
            .await
            .unwrap(),
        "delete_client must delete the client's refresh-token families (revoke_family still \
         found one)"
    );
    for resource in ["", "https://mcp.example.com/mcp"] {
        assert_eq!(
            store
                .find_consent(&person.user_id, &doomed.client_id, resource)
                .await
                .unwrap(),
            None,
            "delete_client must cascade to the client's consents (resource {resource:?})"
        );
    }

    assert_eq!(
        store
            .find_code(&kept_grant.code.code_hash)
            .await
            .unwrap()
            .as_ref(),
        Some(&kept_grant.code),
        "delete_client must not touch another client's codes"
    );
    let kept_refresh = store.find_refresh(&kept_grant.refresh_hash).await.unwrap();
    assert!(
        kept_refresh.is_some_and(|grant| grant.family.revoked_at.is_none()),
        "delete_client must not touch another client's refresh tokens"
    );
    assert_eq!(
        store.list_consents(&person.user_id).await.unwrap(),
        vec![kept_consent],
        "delete_client must not touch another client's consents"
    );
    assert!(
        store.find_user(&person.user_id).await.unwrap().is_some(),
        "delete_client must not delete users"
    );
    assert_eq!(
        store.list_clients().await.unwrap(),
        vec![kept.clone()],
        "only the other client must remain"
    );

    assert!(
        !store.delete_client(&doomed.client_id).await.unwrap(),
        "delete_client of an already deleted client must return false"
    );
    assert!(
        !store
            .delete_client(&names.id("never-existed"))
            .await
            .unwrap(),
        "delete_client of an unknown client must return false"
    );
}
