//! Protected resource metadata (RFC 9728) as the proxy serves it: the
//! exact JSON at the path-inserted and the root URL, CORS for browser
//! clients, and the link from the 401 challenge.

use latchkey_protocol::resource::ResourceUri;
use latchkey_protocol::scope::ScopeSet;
use latchkey_resource::proxy::GuardProxy;
use latchkey_resource::{GuardConfig, MetadataOptions, ScopePolicy, TokenValidator, TrustedIssuer};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{TestIssuer, Upstream, client, start_proxy};

#[tokio::test]
async fn metadata_is_served_at_both_urls_with_the_exact_json() {
    let latchkey = TestIssuer::latchkey().await;
    let foreign = TestIssuer::latchkey().await;
    let upstream = Upstream::start().await;
    let foreign_issuer = format!("{}/", foreign.issuer);
    let proxy = start_proxy(|resource| {
        let validator = TokenValidator::builder(ResourceUri::parse(resource).unwrap())
            .trust(TrustedIssuer::latchkey(&latchkey.issuer))
            .trust(TrustedIssuer::external(&foreign_issuer))
            .build()
            .unwrap();
        GuardProxy::builder(
            upstream.url(),
            GuardConfig::new(validator)
                .scope_policy(
                    ScopePolicy::new(ScopeSet::parse("mcp offline_access").unwrap())
                        .mcp_method("tools/call", ScopeSet::parse("tools:call").unwrap()),
                )
                .metadata(MetadataOptions {
                    resource_name: Some("Test MCP server".to_owned()),
                    resource_documentation: Some("https://docs.example/mcp".to_owned()),
                    scopes_supported: None,
                }),
        )
    })
    .await;
    let expected = json!({
        "resource": proxy.resource,
        "authorization_servers": [latchkey.issuer, foreign_issuer],
        "scopes_supported": ["mcp"],
        "bearer_methods_supported": ["header"],
        "resource_name": "Test MCP server",
        "resource_documentation": "https://docs.example/mcp",
    });
    for url in [
        proxy.metadata_url.clone(),
        format!("{}/.well-known/oauth-protected-resource", proxy.base),
    ] {
        let response = client()
            .get(&url)
            .header("mcp-protocol-version", "2025-11-25")
            .header("origin", "https://app.example")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{url}");
        assert_eq!(response.headers()["content-type"], "application/json");
        assert_eq!(response.headers()["access-control-allow-origin"], "*");
        let document: Value = response.json().await.unwrap();
        assert_eq!(document, expected, "{url}");
    }
    assert_eq!(
        proxy.metadata_url,
        format!("{}/.well-known/oauth-protected-resource/mcp", proxy.base)
    );
}

#[tokio::test]
async fn metadata_answers_cors_preflights() {
    let issuer = TestIssuer::latchkey().await;
    let upstream = Upstream::start().await;
    let proxy = crate::support::simple_proxy(&issuer, &upstream, |guard| guard).await;

    let response = client()
        .request(reqwest::Method::OPTIONS, &proxy.metadata_url)
        .header("origin", "https://app.example")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "mcp-protocol-version")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let headers = response.headers();
    assert_eq!(headers["access-control-allow-origin"], "*");
    assert_eq!(
        headers["access-control-allow-methods"],
        "GET, HEAD, OPTIONS"
    );
    assert_eq!(
        headers["access-control-allow-headers"],
        "mcp-protocol-version"
    );
    assert_eq!(headers["access-control-max-age"], "86400");

    // Without a list, the MCP header is allowed by default.
    let response = client()
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/.well-known/oauth-protected-resource", proxy.base),
        )
        .header("origin", "https://app.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(
        response.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("mcp-protocol-version")
    );

    // The metadata needs no token, and other methods are not allowed.
    let response = client().post(&proxy.metadata_url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
}
