//! Contract checks for [`UserStore`](crate::UserStore): users with
//! case-insensitive unique emails, disabling (which ends sessions), password
//! hashes, and linked upstream identities.

use std::sync::Arc;

use super::{Names, assert_conflict, at, session, user};
use crate::{FederatedIdentityRecord, Store, StoreError, UserRecord};

fn identity(
    issuer: &str,
    subject: &str,
    user_id: &str,
    email: Option<&str>,
) -> FederatedIdentityRecord {
    FederatedIdentityRecord {
        issuer: issuer.to_owned(),
        subject: subject.to_owned(),
        user_id: user_id.to_owned(),
        email: email.map(str::to_owned),
        created_at: at(7),
    }
}

/// `insert_user` stores exactly; a taken id or a taken email (in another
/// case, ASCII or not) is a `"user"` conflict that stores nothing.
pub async fn users_insert_find_and_conflicts(store: Arc<dyn Store>) {
    let names = Names::new("users_insert_find_and_conflicts");
    let alice = user(&names.id("alice"), &names.email("Alice"), at(0));
    let elodie = UserRecord {
        password_hash: None,
        ..user(&names.id("elodie"), &names.email("Élodie"), at(1))
    };
    store
        .insert_user(&alice)
        .await
        .expect("insert_user of a new user failed");
    store
        .insert_user(&elodie)
        .await
        .expect("insert_user of a new user without a password failed");
    assert_eq!(
        store.find_user(&alice.user_id).await.unwrap().as_ref(),
        Some(&alice),
        "find_user did not return the inserted user exactly"
    );
    assert_eq!(
        store.find_user(&elodie.user_id).await.unwrap().as_ref(),
        Some(&elodie),
        "find_user did not return the inserted user (password_hash None) exactly"
    );
    assert_eq!(
        store.find_user(&names.id("nobody")).await.unwrap(),
        None,
        "find_user of an unknown id must be None"
    );

    let same_id = user(&alice.user_id, &names.email("someone-else"), at(2));
    assert_conflict(
        store.insert_user(&same_id).await,
        "user",
        "insert_user with an existing user_id",
    );
    assert_eq!(
        store.find_user_by_email(&same_id.email).await.unwrap(),
        None,
        "a conflicting insert_user must store nothing"
    );

    let shouting = user(&names.id("shouting"), &alice.email.to_uppercase(), at(3));
    assert_conflict(
        store.insert_user(&shouting).await,
        "user",
        "insert_user with an existing email in another (ASCII) case",
    );
    let lower_elodie = user(
        &names.id("lower-elodie"),
        &elodie.email.to_lowercase(),
        at(4),
    );
    assert_conflict(
        store.insert_user(&lower_elodie).await,
        "user",
        "insert_user with an existing email differing only in the case of a non-ASCII letter \
         (emails compare after str::to_lowercase)",
    );
    for refused in [&shouting, &lower_elodie] {
        assert_eq!(
            store.find_user(&refused.user_id).await.unwrap(),
            None,
            "a conflicting insert_user must store nothing"
        );
    }
    assert_eq!(
        store.list_users().await.unwrap(),
        vec![alice.clone(), elodie.clone()],
        "only the two accepted users may exist, unchanged"
    );
}

/// `find_user_by_email` ignores case and returns the email as entered.
pub async fn users_find_by_email_ignores_case(store: Arc<dyn Store>) {
    let names = Names::new("users_find_by_email_ignores_case");
    let mixed = user(&names.id("mixed"), &names.email("Mixed.Case"), at(0));
    let umlaut = user(&names.id("umlaut"), &names.email("Ärger"), at(1));
    store.insert_user(&mixed).await.unwrap();
    store.insert_user(&umlaut).await.unwrap();

    for query in [
        mixed.email.clone(),
        mixed.email.to_lowercase(),
        mixed.email.to_uppercase(),
    ] {
        assert_eq!(
            store.find_user_by_email(&query).await.unwrap().as_ref(),
            Some(&mixed),
            "find_user_by_email({query:?}) must find the user stored as {:?}, with the email as \
             entered",
            mixed.email
        );
    }
    assert_eq!(
        store
            .find_user_by_email(&umlaut.email.to_lowercase())
            .await
            .unwrap()
            .as_ref(),
        Some(&umlaut),
        "find_user_by_email must fold non-ASCII case too (str::to_lowercase)"
    );
    assert_eq!(
        store
            .find_user_by_email(&names.email("nobody"))
            .await
            .unwrap(),
        None,
        "find_user_by_email of an unknown email must be None"
    );
}

/// `list_users` orders by `created_at`, then `user_id` bytewise.
pub async fn users_list_in_order(store: Arc<dyn Store>) {
    let names = Names::new("users_list_in_order");
    assert_eq!(
        store.list_users().await.unwrap(),
        Vec::<UserRecord>::new(),
        "a fresh store must list no users"
    );
    let late = user(&names.id("a-late"), &names.email("late"), at(50));
    let upper = user(&names.id("Z"), &names.email("upper"), at(10));
    let lower = user(&names.id("b"), &names.email("lower"), at(10));
    let early = user(&names.id("z-early"), &names.email("early"), at(-10));
    for record in [&late, &lower, &early, &upper] {
        store.insert_user(record).await.unwrap();
    }
    let listed: Vec<String> = store
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|record| record.user_id)
        .collect();
    assert_eq!(
        listed,
        vec![early.user_id, upper.user_id, lower.user_id, late.user_id],
        "list_users must order by created_at, then user_id compared bytewise ('Z' < 'b')"
    );
}

/// Disabling a user deletes that user's sessions (every time), not other
/// users'; enabling keeps sessions; an unknown user gives `false`.
pub async fn users_disable_deletes_only_their_sessions(store: Arc<dyn Store>) {
    let names = Names::new("users_disable_deletes_only_their_sessions");
    let target = user(&names.id("target"), &names.email("target"), at(0));
    let bystander = user(&names.id("bystander"), &names.email("bystander"), at(0));
    store.insert_user(&target).await.unwrap();
    store.insert_user(&bystander).await.unwrap();
    let live =
        |label: &str, user_id: &str| session(names.secret(label), user_id, at(1000), at(5000));
    let first = live("target-1", &target.user_id);
    let second = live("target-2", &target.user_id);
    let other = live("bystander-1", &bystander.user_id);
    for record in [&first, &second, &other] {
        store.insert_session(record).await.unwrap();
    }

    assert!(
        store
            .set_user_disabled(&target.user_id, true)
            .await
            .unwrap(),
        "set_user_disabled of an existing user must return true"
    );
    assert_eq!(
        store.find_user(&target.user_id).await.unwrap(),
        Some(UserRecord {
            disabled: true,
            ..target.clone()
        }),
        "set_user_disabled(true) must set disabled and change nothing else"
    );
    for gone in [&first, &second] {
        assert_eq!(
            store.find_session(&gone.session_hash, at(0)).await.unwrap(),
            None,
            "disabling a user must delete that user's sessions"
        );
    }
    assert_eq!(
        store
            .find_session(&other.session_hash, at(0))
            .await
            .unwrap()
            .as_ref(),
        Some(&other),
        "disabling a user must not delete other users' sessions"
    );

    let after_enable = live("target-3", &target.user_id);
    store.insert_session(&after_enable).await.unwrap();
    assert!(
        store
            .set_user_disabled(&target.user_id, false)
            .await
            .unwrap()
    );
    assert_eq!(
        store.find_user(&target.user_id).await.unwrap().as_ref(),
        Some(&target),
        "set_user_disabled(false) must re-enable the user"
    );
    assert!(
        store
            .find_session(&after_enable.session_hash, at(0))
            .await
            .unwrap()
            .is_some(),
        "enabling a user must leave the user's sessions alone"
    );

    assert!(
        store
            .set_user_disabled(&target.user_id, true)
            .await
            .unwrap()
    );
    let while_disabled = live("target-4", &target.user_id);
    store.insert_session(&while_disabled).await.unwrap();
    assert!(
        store
            .set_user_disabled(&target.user_id, true)
            .await
            .unwrap(),
        "disabling an already disabled user must still return true"
    );
    for gone in [&after_enable, &while_disabled] {
        assert_eq!(
            store.find_session(&gone.session_hash, at(0)).await.unwrap(),
            None,
            "set_user_disabled(true) must delete the user's sessions even when the user was \
             disabled already"
        );
    }

    assert!(
        !store
            .set_user_disabled(&names.id("nobody"), true)
            .await
            .unwrap(),
        "set_user_disabled of an unknown user must return false"
    );
    assert!(
        store
            .find_session(&other.session_hash, at(0))
            .await
            .unwrap()
            .is_some(),
        "the other user's session must survive everything above"
    );
}

/// `set_password_hash` sets and clears the hash, touches nothing else, and
/// reports unknown users.
pub async fn users_set_password_hash(store: Arc<dyn Store>) {
    let names = Names::new("users_set_password_hash");
    let person = user(&names.id("user"), &names.email("user"), at(0));
    store.insert_user(&person).await.unwrap();

    let replaced = "$argon2id$v=19$m=19456,t=2,p=1$bmV3c2FsdA$bmV3aGFzaG5ld2hhc2g";
    for wanted in [Some(replaced), None, Some("$argon2id$v=19$third")] {
        assert!(
            store
                .set_password_hash(&person.user_id, wanted)
                .await
                .unwrap(),
            "set_password_hash of an existing user must return true"
        );
        assert_eq!(
            store.find_user(&person.user_id).await.unwrap(),
            Some(UserRecord {
                password_hash: wanted.map(str::to_owned),
                ..person.clone()
            }),
            "set_password_hash({wanted:?}) must store exactly that and change nothing else"
        );
    }
    assert!(
        !store
            .set_password_hash(&names.id("nobody"), Some(replaced))
            .await
            .unwrap(),
        "set_password_hash of an unknown user must return false"
    );
}

/// Identities: insert, `(issuer, subject)` uniqueness, `NotFound` for a
/// missing user, the same subject under another issuer, find, list order,
/// delete.
pub async fn identities_insert_find_list_delete(store: Arc<dyn Store>) {
    let names = Names::new("identities_insert_find_list_delete");
    let owner = user(&names.id("owner"), &names.email("owner"), at(0));
    let other = user(&names.id("other"), &names.email("other"), at(0));
    store.insert_user(&owner).await.unwrap();
    store.insert_user(&other).await.unwrap();
    let issuer_a = format!("https://a.example/{}", names.check);
    let issuer_b = format!("https://b.example/{}", names.check);

    let b_1 = identity(&issuer_b, "sub-1", &owner.user_id, Some("owner@b.example"));
    let a_2 = identity(&issuer_a, "sub-2", &owner.user_id, None);
    let a_10 = identity(&issuer_a, "sub-10", &owner.user_id, Some("owner@a.example"));
    let a_1_other = identity(&issuer_a, "sub-1", &other.user_id, None);
    for record in [&b_1, &a_2, &a_10, &a_1_other] {
        store
            .insert_identity(record)
            .await
            .expect("insert_identity of a new (issuer, subject) for an existing user failed");
    }

    assert_conflict(
        store
            .insert_identity(&identity(&issuer_a, "sub-2", &other.user_id, None))
            .await,
        "identity",
        "insert_identity with an (issuer, subject) linked already (to another user)",
    );
    let missing_user = identity(&issuer_a, "sub-orphan", &names.id("nobody"), None);
    match store.insert_identity(&missing_user).await {
        Err(StoreError::NotFound { entity }) => assert_eq!(
            entity, "user",
            "insert_identity for a missing user must be NotFound {{ entity: \"user\" }}"
        ),
        outcome => panic!(
            "insert_identity for a missing user: expected Err(NotFound {{ entity: \"user\" }}), \
             got {outcome:?}"
        ),
    }
    assert_eq!(
        store.find_identity(&issuer_a, "sub-orphan").await.unwrap(),
        None,
        "a refused insert_identity must store nothing"
    );

    assert_eq!(
        store
            .find_identity(&issuer_a, "sub-2")
            .await
            .unwrap()
            .as_ref(),
        Some(&a_2),
        "find_identity must return the first link unchanged after a conflicting insert"
    );
    assert_eq!(
        store
            .find_identity(&issuer_b, "sub-1")
            .await
            .unwrap()
            .as_ref(),
        Some(&b_1),
        "find_identity must match issuer and subject together"
    );
    assert_eq!(
        store
            .find_identity(&issuer_a, "sub-1")
            .await
            .unwrap()
            .as_ref(),
        Some(&a_1_other),
        "the same subject under another issuer is another identity"
    );
    assert_eq!(
        store.find_identity(&issuer_b, "sub-2").await.unwrap(),
        None,
        "find_identity of an unlinked (issuer, subject) must be None"
    );

    assert_eq!(
        store.list_identities(&owner.user_id).await.unwrap(),
        vec![a_10.clone(), a_2.clone(), b_1.clone()],
        "list_identities must return only the user's identities, ordered by issuer then subject \
         bytewise ('sub-10' < 'sub-2')"
    );
    assert_eq!(
        store.list_identities(&other.user_id).await.unwrap(),
        vec![a_1_other.clone()]
    );
    assert_eq!(
        store.list_identities(&names.id("nobody")).await.unwrap(),
        Vec::<FederatedIdentityRecord>::new(),
        "list_identities of an unknown user must be empty"
    );

    assert!(
        store.delete_identity(&issuer_a, "sub-2").await.unwrap(),
        "delete_identity of a linked identity must return true"
    );
    assert!(
        !store.delete_identity(&issuer_a, "sub-2").await.unwrap(),
        "delete_identity of an already deleted identity must return false"
    );
    assert_eq!(store.find_identity(&issuer_a, "sub-2").await.unwrap(), None);
    assert_eq!(
        store.list_identities(&owner.user_id).await.unwrap(),
        vec![a_10, b_1],
        "delete_identity must delete exactly that identity"
    );
    assert!(
        store.find_user(&owner.user_id).await.unwrap().is_some(),
        "delete_identity must not delete the user"
    );
}

/// `insert_user_with_identity` stores both or neither.
pub async fn users_insert_with_identity_is_atomic(store: Arc<dyn Store>) {
    let names = Names::new("users_insert_with_identity_is_atomic");
    let issuer = format!("https://idp.example/{}", names.check);
    let first = user(&names.id("first"), &names.email("First"), at(0));
    let first_identity = identity(
        &issuer,
        "sub-first",
        &first.user_id,
        Some("first@idp.example"),
    );
    store
        .insert_user_with_identity(&first, &first_identity)
        .await
        .expect("insert_user_with_identity of a new user and identity failed");
    assert_eq!(
        store.find_user(&first.user_id).await.unwrap().as_ref(),
        Some(&first)
    );
    assert_eq!(
        store.list_identities(&first.user_id).await.unwrap(),
        vec![first_identity.clone()],
        "insert_user_with_identity must link the identity to the new user"
    );

    // The identity is linked already: no user may be created.
    let second = user(&names.id("second"), &names.email("second"), at(1));
    let taken_identity = identity(&issuer, "sub-first", &second.user_id, None);
    assert_conflict(
        store
            .insert_user_with_identity(&second, &taken_identity)
            .await,
        "identity",
        "insert_user_with_identity with a linked (issuer, subject)",
    );
    assert_eq!(
        store.find_user(&second.user_id).await.unwrap(),
        None,
        "insert_user_with_identity must not create the user when the identity conflicts"
    );
    assert_eq!(
        store.find_user_by_email(&second.email).await.unwrap(),
        None,
        "insert_user_with_identity must not create the user when the identity conflicts"
    );

    // The email is taken (in another case): no identity may be created.
    let third = user(&names.id("third"), &first.email.to_lowercase(), at(2));
    let third_identity = identity(&issuer, "sub-third", &third.user_id, None);
    assert_conflict(
        store
            .insert_user_with_identity(&third, &third_identity)
            .await,
        "user",
        "insert_user_with_identity with a taken email",
    );
    assert_eq!(
        store.find_identity(&issuer, "sub-third").await.unwrap(),
        None,
        "insert_user_with_identity must not create the identity when the user conflicts"
    );

    // The user id is taken: no identity may be created.
    let again = user(&first.user_id, &names.email("again"), at(3));
    let again_identity = identity(&issuer, "sub-again", &first.user_id, None);
    assert_conflict(
        store
            .insert_user_with_identity(&again, &again_identity)
            .await,
        "user",
        "insert_user_with_identity with a taken user_id",
    );
    assert_eq!(
        store.find_identity(&issuer, "sub-again").await.unwrap(),
        None,
        "insert_user_with_identity must not create the identity when the user conflicts"
    );

    assert_eq!(
        store.list_users().await.unwrap(),
        vec![first.clone()],
        "only the first user may exist"
    );
    assert_eq!(
        store
            .find_identity(&issuer, "sub-first")
            .await
            .unwrap()
            .as_ref(),
        Some(&first_identity),
        "the first identity must still point at the first user"
    );
}
