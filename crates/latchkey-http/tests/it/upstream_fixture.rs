//! The upstream OpenID provider fixture as the federation tests use it
//! (`support/upstream_op.rs`): it starts on a free port with the client
//! given, publishes discovery and keys, switches its fault injection, dies
//! with its handle, and explains a missing `npm ci` instead of failing
//! obscurely.

use serde_json::{Value, json};

use crate::upstream_op::{ACCOUNTS, Tamper, UpstreamOp};

const REDIRECT_URI: &str = "http://127.0.0.1:9/login/upstream/fixture/callback";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_publishes_discovery_and_switches_modes() {
    let op = UpstreamOp::start("latchkey", "fixture-secret-0123", &[REDIRECT_URI]);
    assert!(op.issuer.starts_with("http://127.0.0.1:"), "{}", op.issuer);
    assert_eq!(op.client_id, "latchkey");
    assert_eq!(op.client_secret, "fixture-secret-0123");
    let http = reqwest::Client::new();

    let discovery: Value = http
        .get(format!("{}/.well-known/openid-configuration", op.issuer))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["issuer"], json!(op.issuer));
    assert_eq!(
        discovery["code_challenge_methods_supported"],
        json!(["S256"])
    );
    assert_eq!(
        discovery["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post"])
    );
    let jwks: Value = http
        .get(discovery["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut algorithms: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["alg"].as_str().unwrap())
        .collect();
    algorithms.sort_unstable();
    assert_eq!(algorithms, ["ES256", "RS256"]);

    let mode = |op: &UpstreamOp| {
        let url = format!("{}/__test/mode", op.issuer);
        let http = http.clone();
        async move {
            http.get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    assert_eq!(mode(&op).await, json!({"tamper": "none", "down": false}));
    for tamper in [Tamper::Signature, Tamper::Nonce, Tamper::Aud] {
        op.set_mode(tamper, false);
        assert_eq!(
            mode(&op).await,
            json!({"tamper": tamper.as_str(), "down": false})
        );
    }
    op.set_mode(Tamper::None, true);
    assert_eq!(mode(&op).await, json!({"tamper": "none", "down": true}));
    let down = http
        .post(discovery["token_endpoint"].as_str().unwrap())
        .basic_auth(&op.client_id, Some(&op.client_secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=authorization_code&code=x")
        .send()
        .await
        .unwrap();
    assert_eq!(down.status(), 503);
    op.set_mode(Tamper::None, false);
    let up = http
        .post(discovery["token_endpoint"].as_str().unwrap())
        .basic_auth(&op.client_id, Some(&op.client_secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=authorization_code&code=x")
        .send()
        .await
        .unwrap();
    assert_eq!(
        up.status(),
        400,
        "up again: an unknown code is invalid_grant"
    );
    assert_eq!(up.json::<Value>().await.unwrap()["error"], "invalid_grant");

    assert_eq!(
        ACCOUNTS
            .iter()
            .map(|account| (account.login, account.email_verified))
            .collect::<Vec<_>>(),
        [
            ("alice", true),
            ("bob", false),
            ("carol", true),
            ("dave", true)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_process_ends_with_its_handle() {
    let op = UpstreamOp::start("latchkey", "fixture-secret-0123", &[REDIRECT_URI]);
    let pid = op.pid();
    let address = op.issuer.trim_start_matches("http://").to_owned();
    assert!(std::net::TcpStream::connect(&address).is_ok());
    drop(op);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the process is killed and reaped"
    );
    assert!(
        std::net::TcpStream::connect(&address).is_err(),
        "nothing listens any more"
    );
}

#[test]
fn missing_npm_packages_name_the_command_to_run() {
    let scratch = std::env::temp_dir().join(format!(
        "latchkey-upstream-op-{}-{}",
        std::process::id(),
        line!()
    ));
    std::fs::create_dir_all(scratch.join("fixtures")).unwrap();
    std::fs::write(scratch.join("fixtures/upstream-op.mjs"), "// empty\n").unwrap();
    let error = UpstreamOp::try_start_in(&scratch, "latchkey", "secret", &[REDIRECT_URI])
        .unwrap_err()
        .to_string();
    std::fs::remove_dir_all(&scratch).unwrap();
    assert!(error.contains("npm ci --prefix e2e"), "{error}");
    assert!(error.contains("has no oidc-provider"), "{error}");
}
