//! CORS for browser-based MCP clients: preflights on metadata, JWKS,
//! register, token and revoke; none on introspection.

use reqwest::Method;

use crate::backend_tests;
use crate::support::{Backend, TestApp, header};

const ORIGIN: &str = "https://inspector.example";

async fn preflight(app: &TestApp, path: &str, method: &str) -> reqwest::Response {
    app.http
        .request(Method::OPTIONS, app.url(path))
        .header("origin", ORIGIN)
        .header("access-control-request-method", method)
        .header(
            "access-control-request-headers",
            "authorization, content-type, mcp-protocol-version",
        )
        .send()
        .await
        .unwrap()
}

async fn browser_clients_may_call_the_public_endpoints(backend: Backend) {
    let app = TestApp::start(backend).await;
    for (path, method) in [
        ("/.well-known/oauth-authorization-server", "GET"),
        ("/jwks.json", "GET"),
        ("/register", "POST"),
        ("/token", "POST"),
        ("/revoke", "POST"),
    ] {
        let response = preflight(&app, path, method).await;
        assert!(
            response.status() == 200 || response.status() == 204,
            "{path}: {}",
            response.status()
        );
        assert_eq!(
            header(&response, "access-control-allow-origin").as_deref(),
            Some("*"),
            "{path}"
        );
        assert!(header(&response, "access-control-allow-credentials").is_none());
        let allowed = header(&response, "access-control-allow-headers")
            .unwrap_or_default()
            .to_ascii_lowercase();
        for needed in ["authorization", "content-type", "mcp-protocol-version"] {
            assert!(allowed.contains(needed), "{path}: {allowed}");
        }
        let methods = header(&response, "access-control-allow-methods").unwrap_or_default();
        assert!(methods.contains(method), "{path}: {methods}");
    }
    // Actual responses, errors and 404s included, carry the header, so a
    // browser can read them.
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let response = app
            .http
            .get(app.url(path))
            .header("origin", ORIGIN)
            .send()
            .await
            .unwrap();
        assert_eq!(
            header(&response, "access-control-allow-origin").as_deref(),
            Some("*"),
            "{path}"
        );
    }
    let error = app
        .post_form("/token", "grant_type=client_credentials")
        .header("origin", ORIGIN)
        .send()
        .await
        .unwrap();
    assert_eq!(error.status(), 401);
    assert_eq!(
        header(&error, "access-control-allow-origin").as_deref(),
        Some("*")
    );
}

async fn introspection_is_not_for_browsers(backend: Backend) {
    let app = TestApp::start(backend).await;
    let response = preflight(&app, "/introspect", "POST").await;
    assert_eq!(response.status(), 405);
    assert!(header(&response, "access-control-allow-origin").is_none());
    let actual = app
        .post_form("/introspect", "token=x")
        .header("origin", ORIGIN)
        .send()
        .await
        .unwrap();
    assert!(header(&actual, "access-control-allow-origin").is_none());
}

backend_tests!(
    browser_clients_may_call_the_public_endpoints,
    introspection_is_not_for_browsers,
);
