//! `latchkey user link|unlink` and the identities in `user list`, with the
//! real binary on SQLite and on Postgres: linking, listing (table and
//! JSON), the errors an operator meets (unknown user, an identity linked to
//! another user, a bad issuer), and unlinking one subject or every
//! identity at an issuer.

use serde_json::Value;

use crate::process::{latchkey, latchkey_with_stdin};
use crate::storage;

const GOOGLE: &str = "https://accounts.google.com";
const KEYCLOAK: &str = "https://sso.example.com/realms/staff";

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The user with `email` in `latchkey user list --json` (users created in
/// the same second are ordered by their random ids).
fn listed_user<'a>(listed: &'a Value, email: &str) -> &'a Value {
    listed
        .as_array()
        .unwrap()
        .iter()
        .find(|user| user["email"] == email)
        .unwrap_or_else(|| panic!("{email} not in {listed}"))
}

fn identities_flow(database_url: Option<&str>) {
    let data_dir = tempfile::tempdir().unwrap();
    let storage = storage(data_dir.path(), database_url);
    let run = |command: &[&str]| {
        let mut args: Vec<String> = command.iter().map(|part| (*part).to_owned()).collect();
        args.extend(storage.iter().cloned());
        latchkey(&args)
    };
    for email in ["ada@example.org", "bob@example.org"] {
        let mut args: Vec<String> = ["user", "add", "--email", email, "--password-stdin"]
            .iter()
            .map(|part| (*part).to_owned())
            .collect();
        args.extend(storage.iter().cloned());
        let added = latchkey_with_stdin(&args, "a long passphrase\n");
        assert!(added.status.success(), "{added:?}");
    }
    let link = |email: &str, issuer: &str, subject: &str| {
        run(&[
            "user",
            "link",
            "--email",
            email,
            "--issuer",
            issuer,
            "--subject",
            subject,
        ])
    };

    let linked = link("Ada@Example.org", GOOGLE, "110248495921238986420");
    assert!(linked.status.success(), "{linked:?}");
    assert!(
        stdout(&linked).starts_with(&format!(
            "linked issuer={GOOGLE} subject=110248495921238986420 to ada@example.org ("
        )),
        "{linked:?}"
    );
    assert!(
        link("ada@example.org", KEYCLOAK, "f3b1c2d4-0000-4a5b")
            .status
            .success()
    );
    assert!(
        link("ada@example.org", KEYCLOAK, "second-subject")
            .status
            .success()
    );

    // Linked to another user: refused, the owner named, nothing linked.
    let taken = link("bob@example.org", GOOGLE, "110248495921238986420");
    assert!(!taken.status.success());
    assert!(
        stderr(&taken).contains("already linked to the user ada@example.org"),
        "{taken:?}"
    );
    // Linked to this user already.
    let again = link("ada@example.org", GOOGLE, "110248495921238986420");
    assert!(!again.status.success());
    assert!(stderr(&again).contains("already linked to the user ada@example.org"));
    // An unknown user, and identities that could never match an ID token.
    let unknown = link("nobody@example.org", GOOGLE, "s");
    assert!(!unknown.status.success());
    assert!(stderr(&unknown).contains("no such user"), "{unknown:?}");
    let plain_http = link("bob@example.org", "http://accounts.google.com", "s");
    assert!(!plain_http.status.success());
    assert!(
        stderr(&plain_http).contains("the issuer \"http://accounts.google.com\" is not valid"),
        "{plain_http:?}"
    );
    let padded = link("bob@example.org", GOOGLE, " padded");
    assert!(
        stderr(&padded).contains("surrounding whitespace"),
        "{padded:?}"
    );

    let listed: Value = serde_json::from_slice(&run(&["user", "list", "--json"]).stdout).unwrap();
    let ada = listed_user(&listed, "ada@example.org");
    let pairs: Vec<(&str, &str)> = ada["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|identity| {
            (
                identity["issuer"].as_str().unwrap(),
                identity["subject"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        pairs,
        [
            (GOOGLE, "110248495921238986420"),
            (KEYCLOAK, "f3b1c2d4-0000-4a5b"),
            (KEYCLOAK, "second-subject"),
        ]
    );
    assert_eq!(ada["identities"][0]["email"], Value::Null);
    assert!(ada["identities"][0]["linked_at"].as_i64().unwrap() > 1_700_000_000);
    assert_eq!(
        listed_user(&listed, "bob@example.org")["identities"],
        serde_json::json!([])
    );
    let table = stdout(&run(&["user", "list"]));
    assert!(
        table.contains(&format!(
            "\n  linked: issuer={GOOGLE} subject=110248495921238986420\n"
        )),
        "{table}"
    );

    // Bob cannot unlink Ada's identity; the error says whose it is.
    let foreign = run(&[
        "user",
        "unlink",
        "--email",
        "bob@example.org",
        "--issuer",
        GOOGLE,
        "--subject",
        "110248495921238986420",
    ]);
    assert!(!foreign.status.success());
    assert!(
        stderr(&foreign).contains("it is linked to ada@example.org"),
        "{foreign:?}"
    );
    // Every identity at an issuer, then one subject.
    let at_issuer = run(&[
        "user",
        "unlink",
        "--email",
        "ada@example.org",
        "--issuer",
        KEYCLOAK,
    ]);
    assert!(at_issuer.status.success(), "{at_issuer:?}");
    assert_eq!(stdout(&at_issuer).lines().count(), 2, "{at_issuer:?}");
    let one = run(&[
        "user",
        "unlink",
        "--email",
        "ada@example.org",
        "--issuer",
        GOOGLE,
        "--subject",
        "110248495921238986420",
    ]);
    assert!(one.status.success(), "{one:?}");
    let none_left = run(&[
        "user",
        "unlink",
        "--email",
        "ada@example.org",
        "--issuer",
        GOOGLE,
    ]);
    assert!(!none_left.status.success());
    assert!(
        stderr(&none_left).contains("has no linked identity at https://accounts.google.com"),
        "{none_left:?}"
    );
    // Unlinked, the identity may go to Bob.
    assert!(
        link("bob@example.org", GOOGLE, "110248495921238986420")
            .status
            .success()
    );
    let listed: Value = serde_json::from_slice(&run(&["user", "list", "--json"]).stdout).unwrap();
    assert_eq!(
        listed_user(&listed, "ada@example.org")["identities"],
        serde_json::json!([])
    );
    assert_eq!(
        listed_user(&listed, "bob@example.org")["identities"][0]["subject"],
        "110248495921238986420"
    );
}

#[test]
fn user_link_unlink_and_list_identities_on_sqlite() {
    identities_flow(None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_link_unlink_and_list_identities_on_postgres() {
    let database = latchkey_store_diesel::testing::TestDatabase::create()
        .await
        .expect("Postgres must be running (see DATABASE_URL)");
    let url = database.url().to_owned();
    // The binary runs synchronously; keep the runtime's workers free.
    tokio::task::spawn_blocking(move || identities_flow(Some(&url)))
        .await
        .unwrap();
}
