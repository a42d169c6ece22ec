//! The guard proxy end to end: a reqwest client as the MCP client, the
//! proxy on loopback, a real issuer and a real MCP-like upstream.

use std::time::Duration;

use latchkey_protocol::challenge::BearerChallenge;
use latchkey_protocol::scope::ScopeSet;
use latchkey_resource::proxy::{GuardProxy, HostPolicy, IdentityHeaders};
use latchkey_resource::{GuardConfig, ScopePolicy};
use reqwest::StatusCode;
use reqwest::header::HeaderValue;
use serde_json::{Value, json};

use crate::support::{TestIssuer, Upstream, client, simple_proxy, start_proxy, validator_for};

fn scopes(text: &str) -> ScopeSet {
    ScopeSet::parse(text).unwrap()
}

fn challenge(response: &reqwest::Response) -> BearerChallenge {
    let header = response
        .headers()
        .get("www-authenticate")
        .expect("a WWW-Authenticate header")
        .to_str()
        .unwrap();
    assert!(header.starts_with("Bearer "), "{header}");
    BearerChallenge::parse(header).unwrap()
}

/// The values of a header the upstream received.
fn seen(echo: &Value, name: &str) -> Vec<String> {
    echo["headers"][name]
        .as_array()
        .map(|values| {
            values
                .iter()
                .map(|value| value.as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

#[tokio::test]
async fn a_valid_token_passes_and_the_upstream_sees_the_identity_but_no_token() {
    let issuer = TestIssuer::latchkey().await;
    let upstream = Upstream::start().await;
    let proxy = simple_proxy(&issuer, &upstream, |guard| {
        guard.scope_policy(ScopePolicy::new(scopes("mcp")))
    })
    .await;
    let token = issuer.token(&proxy.resource, "mcp files:read");

    let response = client()
        .post(format!("{}?debug=1", proxy.mcp()))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .header("connection", "keep-alive, x-client-private")
        .header("x-client-private", "hop")
        .header("x-forwarded-for", "203.0.113.7")
        .body(INITIALIZE)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["mcp-session-id"],
        "session-from-upstream"
    );
    // The upstream's hop-by-hop header did not come back.
    assert!(response.headers().get("x-upstream-private").is_none());
    let echo: Value = response.json().await.unwrap();

    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["uri"], "/mcp?debug=1");
    assert_eq!(echo["body"], INITIALIZE);
    assert!(seen(&echo, "authorization").is_empty());
    assert_eq!(seen(&echo, "x-latchkey-subject"), ["user-1"]);
    assert_eq!(seen(&echo, "x-latchkey-client-id"), ["client-1"]);
    assert_eq!(seen(&echo, "x-latchkey-scope"), ["mcp files:read"]);
    assert_eq!(
        seen(&echo, "x-latchkey-issuer"),
        vec![issuer.issuer.clone()]
    );
    assert_eq!(seen(&echo, "mcp-protocol-version"), ["2025-11-25"]);
    assert_eq!(
        seen(&echo, "accept"),
        ["application/json, text/event-stream"]
    );
    assert_eq!(seen(&echo, "content-type"), ["application/json"]);
    // Host is the upstream's own authority (DNS-rebinding protection).
    assert_eq!(seen(&echo, "host"), [upstream.address.to_string()]);
    // Forwarding headers: the chain plus the client, the public origin.
    assert_eq!(seen(&echo, "x-forwarded-for"), ["203.0.113.7, 127.0.0.1"]);
    assert_eq!(seen(&echo, "x-forwarded-proto"), ["http"]);
    assert_eq!(
        seen(&echo, "x-forwarded-host"),
        [proxy.base.trim_start_matches("http://").to_owned()]
    );
    // Hop-by-hop headers, and those Connection names, stay behind.
    assert!(seen(&echo, "x-client-private").is_empty());
    assert!(seen(&echo, "connection").is_empty());
}

#[tokio::test]
async fn a_missing_token_gets_401_with_metadata_and_scope_but_no_error() {
    let issuer = TestIssuer::latchkey().await;
    let upstream = Upstream::start().await;
    let proxy = simple_proxy(&issuer, &upstream, |guard| {
        guard.scope_policy(ScopePolicy::new(scopes("mcp tools:read")))
    })
    .await;
    let token = issuer.token(&proxy.resource, "mcp tools:read");

    // No header; a token in the query or the form body is ignored (MCP:
    // tokens only in the Authorization header); another scheme is no token.
    let requests = [
        client().post(proxy.mcp()).body(INITIALIZE),
        client()
            .post(format!("{}?access_token={token}", proxy.mcp()))
            .body(INITIALIZE),
        client()
            .post(proxy.mcp())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("access_token={token}")),
        client().get(proxy.mcp()).basic_auth("user", Some("pass")),
    ];
    for request in requests {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let parsed = challenge(&response);
        assert_eq!(parsed.error, None);
        assert_eq!(parsed.error_description, None);
        assert_eq!(parsed.scope.as_deref(), Some("mcp tools:read"));
        assert_eq!(
            parsed.resource_metadata.as_deref(),
            Some(proxy.metadata_url.as_str())
        );
        assert_eq!(
            proxy.metadata_url,
            format!("{}/.well-known/oauth-protected-resource/mcp", proxy.base)
        );
        assert_eq!(
            response.headers()["access-control-expose-headers"],
            "WWW-Authenticate"
        );
        assert_eq!(response.headers()["content-type"], "application/json");
        assert_eq!(response.headers()["cache-control"], "no-store");
    }
}

#[tokio::test]
async fn bad_tokens_get_401_invalid_token_with_a_safe_description() {
    let issuer = TestIssuer::latchkey().await;
    let upstream = Upstream::start().await;
    let proxy = simple_proxy(&issuer, &upstream, |guard| {
        guard.scope_policy(ScopePolicy::new(scopes("mcp")))
    })
    .await;
    let mut expired = issuer.claims(&proxy.resource, "mcp");
    expired["exp"] = json!(crate::support::now() - 61);
    let cases = [
        (
            issuer.token("https://other.example/mcp", "mcp"),
            "the access token is not intended for this resource",
        ),
        (
            crate::support::sign(&issuer.first_key(), &expired),
            "the access token has expired",
        ),
        ("not.a.jwt".to_owned(), "the access token is malformed"),
    ];
    for (token, description) in cases {
        let response = client()
            .post(proxy.mcp())
            .bearer_auth(&token)
            .body(INITIALIZE)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let raw = response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        let parsed = challenge(&response);
        assert_eq!(parsed.error.as_deref(), Some("invalid_token"));
        assert_eq!(parsed.error_description.as_deref(), Some(description));
        assert_eq!(parsed.scope.as_deref(), Some("mcp"));
        assert_eq!(
            parsed.resource_metadata.as_deref(),
            Some(proxy.metadata_url.as_str())
        );
        assert!(!raw.contains('\\'));
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_token");
    }
    // A token that expired less than the leeway ago still passes.
    let mut recent = issuer.claims(&proxy.resource, "mcp");
    recent["exp"] = json!(crate::support::now() - 30);
    let response = client()
        .post(proxy.mcp())
        .bearer_auth(crate::support::sign(&issuer.first_key(), &recent))
        .body(INITIALIZE)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // Two Authorization headers are a malformed request.
    let response = client()
        .post(proxy.mcp())
        .header("authorization", "Bearer a")
        .header("authorization", "Bearer b")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        challenge(&response).error.as_deref(),
        Some("invalid_request")
    );
}

#[tokio::test]
async fn too_few_scopes_get_403_insufficient_scope_naming_every_scope_needed() {
    let issuer = TestIssuer::latchkey().await;
    let upstream = Upstream::start().await;
    let policy = ScopePolicy::new(scopes("mcp"))
        .mcp_method("tools/call", scopes("tools:call"))
        .tool("delete_everything", scopes("admin"));
    let proxy = simple_proxy(&issuer, &upstream, |guard| guard.scope_policy(policy)).await;
    let call = |tool: &str| {
        format!(
            r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"{tool}","arguments":{{"path":"/"}}}}}}"#
        )
    };
    let base = issuer.token(&proxy.resource, "mcp offline_access");
    let send = |token: String, body: String| {
        client()
            .post(proxy.mcp())
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    // tools/list needs only the default.
    let listed = send(
        base.clone(),
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#.to_owned(),
    )
    .await
    .unwrap();
    assert_eq!(listed.status(), StatusCode::OK);

    // tools/call of a dangerous tool: 403 with everything it needs (and
    // what the token already had, minus offline_access).
    let refused = send(base.clone(), call("delete_everything")).await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let parsed = challenge(&refused);
    assert_eq!(parsed.error.as_deref(), Some("insufficient_scope"));
    assert_eq!(parsed.scope.as_deref(), Some("mcp tools:call admin"));
    assert_eq!(
        parsed.resource_metadata.as_deref(),
        Some(proxy.metadata_url.as_str())
    );

    // With the scopes, the call passes, and the upstream gets the very
    // bytes the client sent.
    let stepped_up = issuer.token(&proxy.resource, "mcp tools:call admin");
    let passed = send(stepped_up.clone(), call("delete_everything"))
        .await
        .unwrap();
    assert_eq!(passed.status(), StatusCode::OK);
    let echo: Value = passed.json().await.unwrap();
    assert_eq!(echo["body"], call("delete_everything"));
    assert_eq!(
        seen(&echo, "content-length"),
        [call("delete_everything").len().to_string()]
    );

    // A body the guard cannot read as JSON-RPC is refused, not guessed at.
    let garbage = send(stepped_up, "{not json".to_owned()).await.unwrap();
    assert_eq!(garbage.status(), StatusCode::BAD_REQUEST);

    // Bodies over the limit are refused with 413 (a small limit here, so
    // the client has written the whole body before the answer comes).
    let small = start_proxy(|resource| {
        let validator = validator_for(resource, &issuer).build().unwrap();
        GuardProxy::builder(
            upstream.url(),
            GuardConfig::new(validator)
                .scope_policy(ScopePolicy::new(scopes("mcp")).tool("x", scopes("x")))
                .body_limit(1024),
        )
    })
    .await;
    let huge = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"x","arguments":{{"blob":"{}"}}}}}}"#,
        "a".repeat(4096)
    );
    let response = client()
        .post(small.mcp())
        .bearer_auth(issuer.token(&small.resource, "mcp x"))
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn spoofed_identity_headers_are_stripped() {
    let issuer = TestIssuer::latchkey().await;
    let upstream = Upstream::start().await;
    let proxy = simple_proxy(&issuer, &upstream, |guard| guard).await;
    let response = client()
        .post(proxy.mcp())
        .bearer_auth(issuer.token(&proxy.resource, "mcp"))
        .header("x-latchkey-subject", "admin")
        .header("X-Latchkey-Scope", "everything")
        .header("x-latchkey-anything", "else")
        .body(INITIALIZE)
        .send()
        .await
        .unwrap();
    let echo: Value = response.json().await.unwrap();
    assert_eq!(seen(&echo, "x-latchkey-subject"), ["user-1"]);
    assert_eq!(seen(&echo, "x-latchkey-scope"), ["mcp"]);
    assert!(seen(&echo, "x-latchkey-anything").is_empty());

    // Custom identity header names are stripped too, and with identity
    // headers disabled nothing identity-like reaches the upstream.
    let custom = start_proxy(|resource| {
        GuardProxy::builder(
            upstream.url(),
            GuardConfig::new(validator_for(resource, &issuer).build().unwrap()),
        )
        .identity_headers(Some(IdentityHeaders {
            subject: "x-user".parse().unwrap(),
            ..IdentityHeaders::default()
        }))
    })
    .await;
    let echo: Value = client()
        .post(custom.mcp())
        .bearer_auth(issuer.token(&custom.resource, "mcp"))
        .header("x-user", "admin")
        .body(INITIALIZE)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen(&echo, "x-user"), ["user-1"]);

    let silent = start_proxy(|resource| {
        GuardProxy::builder(
            upstream.url(),
            GuardConfig::new(validator_for(resource, &issuer).build().unwrap()),
        )
        .identity_headers(None)
    })
    .await;
    let echo: Value = client()
        .post(silent.mcp())
        .bearer_auth(issuer.token(&silent.resource, "mcp"))
        .header("x-latchkey-subject", "admin")
        .body(INITIALIZE)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&String> = echo["headers"].as_object().unwrap().keys().collect();
    assert!(
        names.iter().all(|name| !name.starts_with("x-latchkey-")),
        "{names:?}"
    );
}

#[tokio::test]
async fn sse_events_stream_through_one_by_one() {
    let issuer = TestIssuer::latchkey().await;
    let upstream = Upstream::start().await;
    let proxy = simple_proxy(&issuer, &upstream, |guard| guard).await;
    let mut response = client()
        .get(proxy.mcp())
        .bearer_auth(issuer.token(&proxy.resource, "mcp"))
        .header("accept", "text/event-stream")
        .header("mcp-session-id", "session-42")
        .header("mcp-protocol-version", "2025-11-25")
        .header("last-event-id", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(response.headers()["mcp-session-id"], "session-42");

    // The first event arrives while the upstream still holds the second
    // back: nothing between them buffers the stream.
    let first = tokio::time::timeout(Duration::from_secs(5), response.chunk())
        .await
        .expect("the first event arrives before the upstream sends the second")
        .unwrap()
        .unwrap();
    let first = String::from_utf8(first.to_vec()).unwrap();
    assert!(
        first.starts_with("id: 1\nevent: message\ndata: "),
        "{first}"
    );
    let data: Value = serde_json::from_str(
        first
            .trim_start_matches("id: 1\nevent: message\ndata: ")
            .trim_end(),
    )
    .unwrap();
    assert_eq!(seen(&data, "mcp-session-id"), ["session-42"]);
    assert_eq!(seen(&data, "mcp-protocol-version"), ["2025-11-25"]);
    assert_eq!(seen(&data, "last-event-id"), ["0"]);
    assert!(seen(&data, "authorization").is_empty());

    upstream.gate.notify_one();
    let mut rest = Vec::new();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(5), response.chunk())
        .await
        .unwrap()
        .unwrap()
    {
        rest.extend_from_slice(&chunk);
    }
    assert_eq!(
        String::from_utf8(rest).unwrap(),
        "id: 2\nevent: message\ndata: {\"n\":2}\n\n"
    );
}

#[tokio::test]
async fn sessions_survive_token_refresh_and_delete_passes() {
    let issuer = TestIssuer::latchkey().await;
    let upstream = Upstream::start().await;
    let proxy = simple_proxy(&issuer, &upstream, |guard| guard).await;
    let first = issuer.token(&proxy.resource, "mcp");
    let mut refreshed_claims = issuer.claims(&proxy.resource, "mcp");
    refreshed_claims["jti"] = json!("after-refresh");
    let refreshed = crate::support::sign(&issuer.first_key(), &refreshed_claims);
    assert_ne!(first, refreshed);

    for token in [&first, &refreshed] {
        let response = client()
            .post(proxy.mcp())
            .bearer_auth(token)
            .header("mcp-session-id", "session-7")
            .body(r#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["mcp-session-id"], "session-7");
        let echo: Value = response.json().await.unwrap();
        assert_eq!(seen(&echo, "mcp-session-id"), ["session-7"]);
    }

    let response = client()
        .delete(proxy.mcp())
        .bearer_auth(&refreshed)
        .header("mcp-session-id", "session-7")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(response.headers()["x-deleted-session"], "session-7");

    // DELETE needs a token like anything else.
    let response = client()
        .delete(proxy.mcp())
        .header("mcp-session-id", "session-7")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn host_policies() {
    let issuer = TestIssuer::latchkey().await;
    let upstream = Upstream::start().await;
    for (policy, expected) in [
        (HostPolicy::Preserve, None),
        (
            HostPolicy::Fixed(HeaderValue::from_static("mcp.internal:8080")),
            Some("mcp.internal:8080"),
        ),
    ] {
        let proxy = start_proxy(|resource| {
            GuardProxy::builder(
                upstream.url(),
                GuardConfig::new(validator_for(resource, &issuer).build().unwrap()),
            )
            .host_policy(policy)
            .forwarded_headers(false)
        })
        .await;
        let echo: Value = client()
            .post(proxy.mcp())
            .bearer_auth(issuer.token(&proxy.resource, "mcp"))
            .body(INITIALIZE)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let expected = expected
            .map(str::to_owned)
            .unwrap_or_else(|| proxy.base.trim_start_matches("http://").to_owned());
        assert_eq!(seen(&echo, "host"), [expected]);
        assert!(seen(&echo, "x-forwarded-for").is_empty());
    }
}

#[tokio::test]
async fn an_upstream_path_replaces_the_request_path() {
    let issuer = TestIssuer::latchkey().await;
    let upstream = Upstream::start().await;
    let proxy = start_proxy(|resource| {
        GuardProxy::builder(
            format!("{}/internal/mcp", upstream.url()),
            GuardConfig::new(validator_for(resource, &issuer).build().unwrap()),
        )
    })
    .await;
    let echo: Value = client()
        .post(format!("{}?x=1", proxy.mcp()))
        .bearer_auth(issuer.token(&proxy.resource, "mcp"))
        .body(INITIALIZE)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(echo["uri"], "/internal/mcp?x=1");
}

#[tokio::test]
async fn an_unreachable_upstream_is_502_and_other_paths_are_404() {
    let issuer = TestIssuer::latchkey().await;
    // A port that was free a moment ago: nothing listens there.
    let (listener, address) = crate::support::listener().await;
    drop(listener);
    let proxy = start_proxy(|resource| {
        GuardProxy::builder(
            format!("http://{address}"),
            GuardConfig::new(validator_for(resource, &issuer).build().unwrap()),
        )
    })
    .await;
    let response = client()
        .post(proxy.mcp())
        .bearer_auth(issuer.token(&proxy.resource, "mcp"))
        .body(INITIALIZE)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "bad_gateway");

    for path in [
        "/",
        "/mcp/",
        "/other",
        "/.well-known/oauth-authorization-server",
    ] {
        let response = client()
            .get(format!("{}{path}", proxy.base))
            .bearer_auth(issuer.token(&proxy.resource, "mcp"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn cors_preflights_on_the_mcp_path_reach_the_upstream_without_a_token() {
    let issuer = TestIssuer::latchkey().await;
    let upstream = Upstream::start().await;
    let proxy = simple_proxy(&issuer, &upstream, |guard| guard).await;
    let response = client()
        .request(reqwest::Method::OPTIONS, proxy.mcp())
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, mcp-protocol-version",
        )
        .header("x-latchkey-subject", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let echo: Value = response.json().await.unwrap();
    assert_eq!(echo["method"], "OPTIONS");
    assert!(seen(&echo, "x-latchkey-subject").is_empty());

    // A plain OPTIONS without the preflight headers needs a token.
    let response = client()
        .request(reqwest::Method::OPTIONS, proxy.mcp())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}
