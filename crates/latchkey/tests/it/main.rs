//! Tests of the built `latchkey` binary as an operator and a script use it:
//! `serve` on a free port with a temporary data directory (the port is
//! learned from the printed `issuer:` line), `client add`, the token,
//! introspection and revocation endpoints with real HTTP, `keys rotate`,
//! the `user` commands and the first-run hint, a wrong secret, a clean
//! exit on SIGTERM, and the guard (`guard.rs`: `latchkey guard` and
//! `serve --guard-upstream`). The browser flow against the binary is in
//! `e2e/tests/authorize.test.mjs`, the MCP SDK clients in
//! `e2e/tests/mcp.test.mjs`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod guard;
mod identities;
mod process;

use std::os::unix::fs::PermissionsExt as _;

use base64::Engine as _;
use serde_json::Value;

use process::{Server, latchkey, latchkey_with_stdin};

const RESOURCE: &str = "https://mcp.example.com/mcp=read,write";
const AUDIENCE: &str = "https://mcp.example.com/mcp";

/// The arguments that point a command at a data directory (SQLite) or a
/// database.
pub(crate) fn storage(data_dir: &std::path::Path, database_url: Option<&str>) -> Vec<String> {
    let mut args = vec!["--data-dir".to_owned(), data_dir.display().to_string()];
    if let Some(url) = database_url {
        args.push("--database-url".to_owned());
        args.push(url.to_owned());
    }
    args
}

/// `latchkey client add --confidential --json`: the registration JSON.
pub(crate) fn add_confidential_client(
    data_dir: &std::path::Path,
    database_url: Option<&str>,
) -> Value {
    let mut args = vec![
        "client",
        "add",
        "--name",
        "script",
        "--confidential",
        "--json",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect::<Vec<_>>();
    args.extend(storage(data_dir, database_url));
    let output = latchkey(&args);
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).unwrap()
}

pub(crate) fn basic(client: &Value) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            client["client_id"].as_str().unwrap(),
            client["client_secret"].as_str().unwrap()
        ))
    )
}

/// Verifies `token` against the server's JWKS with josekit; returns the
/// header and claims.
async fn verify(server: &Server, token: &str) -> (Value, Value) {
    let jwks: Value = reqwest::get(format!("{}/jwks.json", server.issuer))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|key| key["kid"] == header["kid"])
        .unwrap_or_else(|| panic!("{} not in {jwks}", header["kid"]));
    let jwk = josekit::jwk::Jwk::from_map(key.as_object().unwrap().clone()).unwrap();
    let verifier = josekit::jws::ES256.verifier_from_jwk(&jwk).unwrap();
    let (payload, _) = josekit::jws::deserialize_compact(token, &verifier).unwrap();
    (header, serde_json::from_slice(&payload).unwrap())
}

async fn client_credentials(server: &Server, client: &Value) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{}/token", server.issuer))
        .header("authorization", basic(client))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=client_credentials&resource={}",
            "https%3A%2F%2Fmcp.example.com%2Fmcp"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn form(server: &Server, path: &str, client: &Value, body: String) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}{path}", server.issuer))
        .header("authorization", basic(client))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
}

/// The whole script flow on one backend: client add, token, verify,
/// introspect, revoke, introspect again.
async fn script_flow(database_url: Option<&str>) {
    let data_dir = tempfile::tempdir().unwrap();
    let client = add_confidential_client(data_dir.path(), database_url);
    assert!(
        client["client_secret"]
            .as_str()
            .unwrap()
            .starts_with("lks_")
    );
    assert_eq!(
        client["grant_types"],
        serde_json::json!(["client_credentials"])
    );

    let mut args = storage(data_dir.path(), database_url);
    args.extend(["--resource".to_owned(), RESOURCE.to_owned()]);
    let server = Server::start(&args);
    let tokens = client_credentials(&server, &client).await;
    assert_eq!(tokens["token_type"], "Bearer");
    let access_token = tokens["access_token"].as_str().unwrap();
    let (header, claims) = verify(&server, access_token).await;
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(claims["aud"], AUDIENCE);
    assert_eq!(claims["iss"], server.issuer.as_str());

    let token_form = format!("token={access_token}");
    let active: Value = form(&server, "/introspect", &client, token_form.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(active["active"], true, "{active}");
    let revoked = form(&server, "/revoke", &client, token_form.clone()).await;
    assert_eq!(revoked.status(), 200);
    let inactive: Value = form(&server, "/introspect", &client, token_form)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(inactive, serde_json::json!({"active": false}));
    server.stop_and_expect_clean_exit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_prints_where_it_is_and_stops_cleanly_on_sigterm() {
    let data_dir = tempfile::tempdir().unwrap();
    let server = Server::start(&storage(data_dir.path(), None));
    let stdout = server.stdout();
    assert!(server.issuer.starts_with("http://127.0.0.1:"), "{stdout}");
    for expected in [
        format!(
            "metadata:   {}/.well-known/oauth-authorization-server",
            server.issuer
        ),
        format!("jwks:       {}/jwks.json", server.issuer),
        "database:   sqlite://".to_owned(),
        "Next:".to_owned(),
    ] {
        assert!(
            stdout.contains(&expected),
            "{expected:?} missing in:\n{stdout}"
        );
    }
    let metadata: Value = reqwest::get(format!(
        "{}/.well-known/oauth-authorization-server",
        server.issuer
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(metadata["issuer"], server.issuer.as_str());
    let jwks: Value = reqwest::get(format!("{}/jwks.json", server.issuer))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);

    let secret = data_dir.path().join("secret");
    let mode = std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let stderr = server.stop_and_expect_clean_exit();
    assert!(stderr.contains("production needs --issuer"), "{stderr}");
    // Nothing secret reached the logs.
    let secret_value = std::fs::read_to_string(&secret).unwrap();
    assert!(!stderr.contains(secret_value.trim()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_gets_verifies_introspects_and_revokes_a_token_on_sqlite() {
    script_flow(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_gets_verifies_introspects_and_revokes_a_token_on_postgres() {
    let database = latchkey_store_diesel::testing::TestDatabase::create()
        .await
        .expect("Postgres must be running (see DATABASE_URL)");
    script_flow(Some(database.url())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_adds_a_key_and_keeps_the_old_one_published() {
    let data_dir = tempfile::tempdir().unwrap();
    let client = add_confidential_client(data_dir.path(), None);
    let mut args = storage(data_dir.path(), None);
    args.extend(["--resource".to_owned(), RESOURCE.to_owned()]);

    let before = Server::start(&args);
    let old_token = client_credentials(&before, &client).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (old_header, _) = verify(&before, &old_token).await;
    before.stop_and_expect_clean_exit();

    let mut rotate = vec!["keys".to_owned(), "rotate".to_owned()];
    rotate.extend(storage(data_dir.path(), None));
    let output = latchkey(&rotate);
    assert!(output.status.success(), "{output:?}");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(printed.contains("active key:"), "{printed}");
    assert!(
        printed.contains(&format!(
            "retired key: {}",
            old_header["kid"].as_str().unwrap()
        )),
        "{printed}"
    );

    let after = Server::start(&args);
    let jwks: Value = reqwest::get(format!("{}/jwks.json", after.issuer))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2, "{jwks}");
    // The old token still verifies; a new one uses the new key.
    verify(&after, &old_token).await;
    let new_token = client_credentials(&after, &client).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (new_header, _) = verify(&after, &new_token).await;
    assert_ne!(new_header["kid"], old_header["kid"]);
    after.stop_and_expect_clean_exit();

    let mut list = vec!["keys".to_owned(), "list".to_owned()];
    list.extend(storage(data_dir.path(), None));
    let output = latchkey(&list);
    let listed = String::from_utf8_lossy(&output.stdout);
    assert!(
        listed.contains("retired") && listed.contains("active"),
        "{listed}"
    );
}

#[test]
fn a_different_secret_is_refused_with_the_reason() {
    let data_dir = tempfile::tempdir().unwrap();
    let first = Server::start(&storage(data_dir.path(), None));
    first.stop_and_expect_clean_exit();

    let mut args = vec![
        "serve".to_owned(),
        "--listen".to_owned(),
        "127.0.0.1:0".to_owned(),
    ];
    args.extend(storage(data_dir.path(), None));
    let output = process::latchkey_with_env(
        &args,
        &[(
            "LATCHKEY_SECRET",
            "a-completely-different-secret-0123456789",
        )],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr
            .contains("server secret does not match the one the signing keys were encrypted with"),
        "{stderr}"
    );
}

#[test]
fn client_commands_list_show_and_remove() {
    let data_dir = tempfile::tempdir().unwrap();
    let storage = storage(data_dir.path(), None);
    let run = |command: &[&str]| {
        let mut args: Vec<String> = command.iter().map(|part| (*part).to_owned()).collect();
        args.extend(storage.iter().cloned());
        latchkey(&args)
    };
    let added = run(&[
        "client",
        "add",
        "--name",
        "desktop app",
        "--redirect-uri",
        "http://127.0.0.1/callback",
    ]);
    assert!(added.status.success(), "{added:?}");
    let printed = String::from_utf8_lossy(&added.stdout).into_owned();
    let client_id = printed
        .lines()
        .find_map(|line| line.strip_prefix("client_id: "))
        .unwrap()
        .to_owned();
    assert!(!printed.contains("client_secret"), "{printed}");
    assert!(
        printed.contains("authorization_code refresh_token"),
        "{printed}"
    );

    let listed = run(&["client", "list"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains(&client_id) && listed.contains("desktop app"),
        "{listed}"
    );

    let shown = run(&["client", "show", &client_id]);
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["origin"], "admin");
    assert_eq!(
        shown["metadata"]["redirect_uris"],
        serde_json::json!(["http://127.0.0.1/callback"])
    );

    assert!(run(&["client", "remove", &client_id]).status.success());
    let again = run(&["client", "remove", &client_id]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("no client"));

    let invalid = run(&["client", "add", "--name", "nothing"]);
    assert!(!invalid.status.success());
    assert!(
        String::from_utf8_lossy(&invalid.stderr).contains("redirect_uris is required"),
        "{invalid:?}"
    );
}

#[test]
fn user_commands_add_list_disable_enable_and_change_passwords() {
    let data_dir = tempfile::tempdir().unwrap();
    let storage = storage(data_dir.path(), None);
    let with = |command: &[&str]| {
        let mut args: Vec<String> = command.iter().map(|part| (*part).to_owned()).collect();
        args.extend(storage.iter().cloned());
        args
    };

    // The first start says how to create a user.
    let server = Server::start(&storage);
    let stdout = server.stdout();
    assert!(
        stdout.contains("No users yet: create one with `latchkey user add --email you@example.com --password-stdin`"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("authorize:  {}/authorize", server.issuer)),
        "{stdout}"
    );
    server.stop_and_expect_clean_exit();

    // The password comes only from standard input, and follows the policy.
    let refused = latchkey(&with(&["user", "add", "--email", "ada@example.org"]));
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--password-stdin"));
    let short = latchkey_with_stdin(
        &with(&[
            "user",
            "add",
            "--email",
            "ada@example.org",
            "--password-stdin",
        ]),
        "short\n",
    );
    assert!(!short.status.success());
    assert!(
        String::from_utf8_lossy(&short.stderr).contains("at least 8 characters"),
        "{short:?}"
    );
    let empty = latchkey_with_stdin(
        &with(&[
            "user",
            "add",
            "--email",
            "ada@example.org",
            "--password-stdin",
        ]),
        "",
    );
    assert!(
        String::from_utf8_lossy(&empty.stderr).contains("no password"),
        "{empty:?}"
    );

    let added = latchkey_with_stdin(
        &with(&[
            "user",
            "add",
            "--email",
            "Ada@Example.org",
            "--password-stdin",
        ]),
        "first password\r\n",
    );
    assert!(added.status.success(), "{added:?}");
    let printed = String::from_utf8_lossy(&added.stdout).into_owned();
    let user_id = printed
        .lines()
        .find_map(|line| line.strip_prefix("user_id: "))
        .unwrap()
        .to_owned();
    assert!(!printed.contains("first password"));
    let taken = latchkey_with_stdin(
        &with(&[
            "user",
            "add",
            "--email",
            "ada@example.ORG",
            "--password-stdin",
        ]),
        "another password\n",
    );
    assert!(
        String::from_utf8_lossy(&taken.stderr).contains("exists already"),
        "{taken:?}"
    );

    let listed: Value =
        serde_json::from_slice(&latchkey(&with(&["user", "list", "--json"])).stdout).unwrap();
    assert_eq!(listed[0]["user_id"], user_id.as_str());
    assert_eq!(listed[0]["email"], "Ada@Example.org");
    assert_eq!(listed[0]["disabled"], false);

    let disabled = latchkey(&with(&["user", "disable", "ada@example.org"]));
    assert!(disabled.status.success(), "{disabled:?}");
    let table = String::from_utf8_lossy(&latchkey(&with(&["user", "list"])).stdout).into_owned();
    assert!(
        table.contains("disabled") && table.contains(&user_id),
        "{table}"
    );
    assert!(
        latchkey(&with(&["user", "enable", &user_id]))
            .status
            .success()
    );
    let table = String::from_utf8_lossy(&latchkey(&with(&["user", "list"])).stdout).into_owned();
    assert!(table.contains("active"), "{table}");

    let changed = latchkey_with_stdin(
        &with(&["user", "passwd", "ada@example.org", "--password-stdin"]),
        "second password\n",
    );
    assert!(changed.status.success(), "{changed:?}");
    let missing = latchkey(&with(&["user", "disable", "nobody@example.org"]));
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no such user"));

    // With a user, the hint is gone.
    let server = Server::start(&storage);
    assert!(
        !server.stdout().contains("No users yet"),
        "{}",
        server.stdout()
    );
    server.stop_and_expect_clean_exit();
}
