//! Contract checks for [`ConsentStore`](crate::ConsentStore): consent keyed
//! by `(user, client, resource)` with the empty resource as a real key,
//! replacement, ordering, `last_used_at` and deletion.

use std::sync::Arc;

use super::{Names, assert_not_found, at, client, consent, seed_client_and_user, user};
use crate::{ConsentRecord, Store};

/// Upsert inserts and replaces, find and list include expired consents,
/// list orders by `granted_at`, `client_id`, `resource`, touch sets only
/// `last_used_at`, delete removes one key, and parents must exist.
pub async fn consents_upsert_find_list_touch_delete(store: Arc<dyn Store>) {
    let names = Names::new("consents_upsert_find_list_touch_delete");
    let (lower, person) = seed_client_and_user(&*store, &names).await;
    // "Client" sorts before "client" bytewise.
    let upper = client(&names.id("Client"), at(-1000));
    store.insert_client(&upper).await.unwrap();
    let other_person = user(&names.id("other-user"), &names.email("other"), at(-1000));
    store.insert_user(&other_person).await.unwrap();
    let resource = "https://mcp.example.com/mcp";
    let (u, lc, uc) = (&person.user_id, &lower.client_id, &upper.client_id);

    let plain = consent(u, lc, "", at(10), at(1000));
    let expired = consent(u, lc, resource, at(10), at(5));
    let upper_plain = consent(u, uc, "", at(10), at(1000));
    let earliest = consent(u, uc, resource, at(3), at(1000));
    let others = consent(&other_person.user_id, lc, "", at(1), at(1000));
    for record in [&plain, &expired, &upper_plain, &earliest, &others] {
        store
            .upsert_consent(record)
            .await
            .expect("upsert_consent of a new consent failed");
    }
    assert_eq!(
        store.find_consent(u, lc, "").await.unwrap().as_ref(),
        Some(&plain),
        "find_consent must return the consent stored under the empty resource exactly"
    );
    assert_eq!(
        store.find_consent(u, lc, resource).await.unwrap().as_ref(),
        Some(&expired),
        "find_consent must return expired consents too, and tell resources apart"
    );
    assert_eq!(
        store
            .find_consent(u, lc, "https://other.example/mcp")
            .await
            .unwrap(),
        None,
        "find_consent of an unknown resource must be None"
    );
    assert_eq!(
        store.list_consents(u).await.unwrap(),
        vec![
            earliest.clone(),
            upper_plain.clone(),
            plain.clone(),
            expired.clone()
        ],
        "list_consents must return the user's consents (expired included) ordered by \
         granted_at, then client_id bytewise ('Client' < 'client'), then resource"
    );

    let replaced = ConsentRecord {
        scopes: vec!["mcp:read".to_owned(), "mcp:write".to_owned()],
        granted_at: at(20),
        expires_at: at(2000),
        last_used_at: Some(at(15)),
        ..plain.clone()
    };
    store
        .upsert_consent(&replaced)
        .await
        .expect("upsert_consent of an existing key failed");
    assert_eq!(
        store.find_consent(u, lc, "").await.unwrap().as_ref(),
        Some(&replaced),
        "upsert_consent of an existing key must replace every field"
    );
    assert_eq!(
        store.list_consents(u).await.unwrap(),
        vec![
            earliest.clone(),
            upper_plain.clone(),
            expired.clone(),
            replaced.clone()
        ],
        "upsert_consent must replace, not add, and list_consents must re-order by granted_at"
    );

    assert!(
        store.touch_consent(u, lc, "", at(30)).await.unwrap(),
        "touch_consent of an existing consent must return true"
    );
    let touched = ConsentRecord {
        last_used_at: Some(at(30)),
        ..replaced.clone()
    };
    assert_eq!(
        store.find_consent(u, lc, "").await.unwrap().as_ref(),
        Some(&touched),
        "touch_consent must set last_used_at = now and change nothing else"
    );
    assert!(
        store.touch_consent(u, lc, resource, at(30)).await.unwrap(),
        "touch_consent of an expired consent must still return true (it exists)"
    );
    assert!(
        !store
            .touch_consent(u, uc, "https://other.example/mcp", at(30))
            .await
            .unwrap(),
        "touch_consent of a missing consent must return false"
    );
    assert_eq!(
        store
            .find_consent(u, uc, "https://other.example/mcp")
            .await
            .unwrap(),
        None,
        "touch_consent must not create a consent"
    );

    assert!(
        store.delete_consent(u, lc, "").await.unwrap(),
        "delete_consent of an existing consent must return true"
    );
    assert!(
        !store.delete_consent(u, lc, "").await.unwrap(),
        "delete_consent of a deleted consent must return false"
    );
    assert_eq!(store.find_consent(u, lc, "").await.unwrap(), None);
    assert_eq!(
        store.list_consents(u).await.unwrap(),
        vec![
            earliest,
            upper_plain,
            ConsentRecord {
                last_used_at: Some(at(30)),
                ..expired
            }
        ],
        "delete_consent must delete exactly one (user, client, resource)"
    );
    assert_eq!(
        store.list_consents(&other_person.user_id).await.unwrap(),
        vec![others],
        "another user's consents must be untouched"
    );
    assert_eq!(
        store.list_consents(&names.id("nobody")).await.unwrap(),
        Vec::<ConsentRecord>::new(),
        "list_consents of an unknown user must be empty"
    );

    assert_not_found(
        store
            .upsert_consent(&consent(&names.id("nobody"), lc, "", at(0), at(100)))
            .await,
        "upsert_consent for a user that does not exist",
    );
    assert_not_found(
        store
            .upsert_consent(&consent(u, &names.id("no-client"), "", at(0), at(100)))
            .await,
        "upsert_consent for a client that does not exist",
    );
}
