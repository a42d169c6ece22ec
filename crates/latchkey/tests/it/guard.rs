//! The guard as an operator runs it: `latchkey guard` next to a separate
//! `latchkey serve`, and `latchkey serve --guard-upstream` (all-in-one),
//! over real loopback HTTP. The upstream is a closed loopback port, so a
//! request the guard lets through comes back as the proxy's 502 and one it
//! refuses as 401/403: no MCP server is needed to tell them apart (the
//! MCP SDK clients run against a real one in `e2e/tests/mcp.test.mjs`).

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use crate::process::{Server, binary, latchkey};
use crate::{add_confidential_client, basic, storage};

/// A loopback URL nothing listens on (the discard port).
const CLOSED_UPSTREAM: &str = "http://127.0.0.1:9";

/// A client_credentials token for `resource` with `scope`.
async fn token_for(server: &Server, client: &Value, resource: &str, scope: &str) -> String {
    let response = reqwest::Client::new()
        .post(format!("{}/token", server.issuer))
        .header("authorization", basic(client))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", "client_credentials")
                .append_pair("resource", resource)
                .append_pair("scope", scope)
                .finish(),
        )
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// POSTs a JSON-RPC call to `url`; returns the status and the challenge.
async fn call(url: &str, token: Option<&str>, tool: &str) -> (u16, String) {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{tool}","arguments":{{}}}}}}"#
        ));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (response.status().as_u16(), challenge)
}

/// The `kid` of a JWT.
fn kid(token: &str) -> String {
    use base64::Engine as _;
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_in_one_guards_its_mcp_path_with_its_own_keys_across_a_rotation() {
    let data_dir = tempfile::tempdir().unwrap();
    let client = add_confidential_client(data_dir.path(), None);
    let mut args = storage(data_dir.path(), None);
    args.extend(
        [
            "--guard-upstream",
            CLOSED_UPSTREAM,
            "--guard-scope",
            "mcp",
            "--guard-tool-scope",
            "secret=mcp:admin",
            "--key-reload-interval",
            "1s",
        ]
        .map(str::to_owned),
    );
    let server = Server::start(&args);
    let mcp = format!("{}/mcp", server.issuer);
    let summary = server.stdout();
    assert!(
        summary.contains(&format!("  mcp:        {mcp}\n")),
        "{summary}"
    );
    assert!(
        summary.contains(&format!("  resource:   {mcp} (scopes: mcp mcp:admin)")),
        "{summary}"
    );

    let metadata: Value = reqwest::get(format!(
        "{}/.well-known/oauth-protected-resource/mcp",
        server.issuer
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(metadata["resource"], mcp.as_str());
    assert_eq!(
        metadata["authorization_servers"],
        serde_json::json!([server.issuer])
    );
    assert_eq!(metadata["scopes_supported"], serde_json::json!(["mcp"]));

    let (status, challenge) = call(&mcp, None, "add").await;
    assert_eq!(status, 401);
    assert!(
        challenge.contains(&format!(
            "resource_metadata=\"{}/.well-known/oauth-protected-resource/mcp\"",
            server.issuer
        )),
        "{challenge}"
    );
    assert!(challenge.contains("scope=\"mcp\""), "{challenge}");
    assert!(!challenge.contains("error="), "{challenge}");

    let token = token_for(&server, &client, &mcp, "mcp").await;
    assert_eq!(call(&mcp, Some(&token), "add").await.0, 502, "admitted");
    let (status, challenge) = call(&mcp, Some(&token), "secret").await;
    assert_eq!(status, 403);
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );

    // A rotation by another process reaches the guard with the reload, not
    // only after the guard's own refetch interval.
    let mut rotate = vec!["keys".to_owned(), "rotate".to_owned()];
    rotate.extend(storage(data_dir.path(), None));
    let output = latchkey(&rotate);
    assert!(output.status.success(), "{output:?}");
    let mut rotated = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let candidate = token_for(&server, &client, &mcp, "mcp").await;
        if kid(&candidate) != kid(&token) {
            rotated = Some(candidate);
            break;
        }
    }
    let rotated = rotated.expect("the server never signed with the rotated key");
    assert_eq!(
        call(&mcp, Some(&rotated), "add").await.0,
        502,
        "new key admitted"
    );
    assert_eq!(
        call(&mcp, Some(&token), "add").await.0,
        502,
        "old key still admitted"
    );
    server.stop_and_expect_clean_exit();
}

/// A running `latchkey guard`, stopped with SIGTERM (killed on drop).
struct GuardProcess {
    child: Option<Child>,
    mcp: String,
}

impl GuardProcess {
    fn start(args: &[String]) -> GuardProcess {
        let mut child = binary()
            .arg("guard")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let reader = BufReader::new(child.stdout.take().unwrap());
        let (found, mcp_line) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in reader.lines().map_while(Result::ok) {
                if let Some(url) = line.trim().strip_prefix("mcp:") {
                    let _ = found.send(url.trim().to_owned());
                }
            }
        });
        let mut guard = GuardProcess {
            child: Some(child),
            mcp: String::new(),
        };
        guard.mcp = mcp_line
            .recv_timeout(Duration::from_secs(60))
            .expect("the guard printed no mcp: line");
        guard
    }

    fn stop_and_expect_clean_exit(mut self) {
        let mut child = self.child.take().unwrap();
        let killed = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let status = child.wait().unwrap();
        assert!(status.success(), "{status}");
    }
}

impl Drop for GuardProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_separate_guard_admits_tokens_for_its_resource_only() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let data_dir = tempfile::tempdir().unwrap();
    let client = add_confidential_client(data_dir.path(), None);
    let mut args = storage(data_dir.path(), None);
    args.extend([
        "--resource".to_owned(),
        format!("{resource}=mcp"),
        "--resource".to_owned(),
        "https://other.example/mcp=mcp".to_owned(),
    ]);
    let server = Server::start(&args);

    let guard = GuardProcess::start(&[
        "--listen".to_owned(),
        format!("127.0.0.1:{port}"),
        "--upstream".to_owned(),
        CLOSED_UPSTREAM.to_owned(),
        "--resource".to_owned(),
        resource.clone(),
        "--issuer".to_owned(),
        server.issuer.clone(),
        "--scope".to_owned(),
        "mcp".to_owned(),
    ]);
    assert_eq!(guard.mcp, resource);

    let (status, challenge) = call(&resource, None, "add").await;
    assert_eq!(status, 401);
    assert!(!challenge.contains("error="), "{challenge}");
    let token = token_for(&server, &client, &resource, "mcp").await;
    assert_eq!(
        call(&resource, Some(&token), "add").await.0,
        502,
        "admitted"
    );
    let foreign = token_for(&server, &client, "https://other.example/mcp", "mcp").await;
    let (status, challenge) = call(&resource, Some(&foreign), "add").await;
    assert_eq!(status, 401, "a token for another resource");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");

    guard.stop_and_expect_clean_exit();
    server.stop_and_expect_clean_exit();
}

#[test]
fn a_guard_with_a_wrong_issuer_stops_at_start_and_says_why() {
    let output = latchkey(
        &[
            "guard",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            CLOSED_UPSTREAM,
            "--resource",
            "http://127.0.0.1:8090/mcp",
            "--issuer",
            CLOSED_UPSTREAM,
        ]
        .map(str::to_owned),
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot load the signing keys"), "{stderr}");
    assert!(stderr.contains("--issuer"), "{stderr}");

    let output = latchkey(&[
        "guard".to_owned(),
        "--upstream".to_owned(),
        CLOSED_UPSTREAM.to_owned(),
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--resource is required"), "{stderr}");
}
