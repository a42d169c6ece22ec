//! Client ID Metadata Document clients over HTTP: the document is served by
//! a real axum server on 127.0.0.1 (the development setting on), and the
//! client completes the code flow, refreshes and revokes with its URL as
//! `client_id`; document failures are a page at `/authorize` and
//! `invalid_client` at `/token`; the consent page names the document's host
//! and says whether it is verified.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use latchkey_store::ClientOrigin;

use crate::backend_tests;
use crate::browser::{AuthRequest, Browser, assert_code_redirect, exchange, user};
use crate::support::{Backend, Client, TestApp, TestAppBuilder, assert_oauth_error, json};

/// A document server: `/client.json` is a valid document with a port-less
/// loopback redirect URI (and no `token_endpoint_auth_method`),
/// `/moved.json` redirects to it.
struct DocumentServer {
    base: String,
    fetches: Arc<AtomicUsize>,
}

#[derive(Clone)]
struct DocumentState {
    base: String,
    fetches: Arc<AtomicUsize>,
}

async fn document(State(state): State<DocumentState>) -> impl IntoResponse {
    state.fetches.fetch_add(1, Ordering::SeqCst);
    let body = serde_json::json!({
        "client_id": format!("{}/client.json", state.base),
        "client_name": "Document App",
        "redirect_uris": ["http://127.0.0.1/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "a_field_latchkey_does_not_know": true
    });
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        body.to_string(),
    )
}

async fn moved(State(state): State<DocumentState>) -> impl IntoResponse {
    state.fetches.fetch_add(1, Ordering::SeqCst);
    (
        StatusCode::FOUND,
        [(header::LOCATION, format!("{}/client.json", state.base))],
    )
}

impl DocumentServer {
    async fn start() -> DocumentServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let fetches = Arc::new(AtomicUsize::new(0));
        let router = axum::Router::new()
            .route("/client.json", get(document))
            .route("/moved.json", get(moved))
            .with_state(DocumentState {
                base: base.clone(),
                fetches: Arc::clone(&fetches),
            });
        tokio::spawn(async move { axum::serve(listener, router).await });
        DocumentServer { base, fetches }
    }

    fn client(&self, path: &str) -> Client {
        Client {
            client_id: format!("{}{path}", self.base),
            client_secret: None,
        }
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

fn development(backend: Backend) -> TestAppBuilder {
    TestApp::builder(backend).configure(|config| config.metadata_documents.allow_insecure = true)
}

async fn a_document_client_completes_the_code_flow_refreshes_and_revokes(backend: Backend) {
    let app = development(backend).start().await;
    let documents = DocumentServer::start().await;
    let client = documents.client("/client.json");
    let email = "cimd@example.com";
    user(&app, email).await;
    let browser = Browser::new(&app);

    // The registered redirect URI has no port; the request uses the
    // test's fixed loopback port (RFC 8252 §7.3 any-port matching).
    let request = AuthRequest::new(&client).set("scope", "read offline_access");
    let consent = browser.authorize_and_sign_in(&request, email).await;
    assert!(consent.is_consent(), "{}", consent.body);
    assert!(consent.body.contains("Document App"), "{}", consent.body);
    assert!(
        consent
            .body
            .contains("Published by <strong class=\"client-host\">127.0.0.1</strong>"),
        "{}",
        consent.body
    );
    assert!(consent.body.contains("Unverified app"));
    let redirect = browser.decide(&consent, "approve").await;
    let code = assert_code_redirect(&app, &redirect);

    let (status, tokens) = exchange(&app, &client, &request, &code).await;
    assert_eq!(status, 200, "{tokens}");
    let (_, claims) = app
        .verify_with_jwks(tokens["access_token"].as_str().unwrap())
        .await;
    assert_eq!(claims["client_id"], client.client_id.as_str());

    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    let (status, refreshed) = json(
        app.token(
            &client,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("resource", crate::support::MCP),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{refreshed}");

    let revoked = app
        .post_form(
            "/revoke",
            crate::support::form(&[
                ("token", refreshed["refresh_token"].as_str().unwrap()),
                ("client_id", &client.client_id),
            ]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);

    // One fetch served the whole flow; the stored client is a document.
    assert_eq!(documents.fetches(), 1);
    let record = app
        .store()
        .find_client(&client.client_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.origin, ClientOrigin::MetadataDocument);

    // A redirect URI that differs in more than the port is refused with a
    // page, never a redirect.
    let other_path = AuthRequest::new(&client).set("redirect_uri", "http://127.0.0.1:33418/other");
    let page = browser.get(&other_path.path()).await;
    assert_eq!(page.status, 400);
    assert!(page.header("location").is_none());
    assert!(page.body.contains("return address is not registered"));
}

async fn document_failures_are_a_page_at_authorize_and_invalid_client_at_token(backend: Backend) {
    let app = development(backend).start().await;
    let documents = DocumentServer::start().await;
    let client = documents.client("/moved.json");
    let browser = Browser::new(&app);

    let page = browser.get(&AuthRequest::new(&client).path()).await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.header("location").is_none());
    assert!(page.is_error(), "{}", page.body);
    assert!(
        page.body.contains("registration could not be checked"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("redirects are not followed"),
        "{}",
        page.body
    );
    page.assert_page_headers();

    let response = app
        .token(
            &client,
            &[
                ("grant_type", "authorization_code"),
                ("code", "lkc_nothing"),
                ("code_verifier", &"v".repeat(43)),
            ],
        )
        .await;
    let body = assert_oauth_error(response, 401, "invalid_client").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("redirect"),
        "{body}"
    );
    // The redirect target was never fetched, and the failure was
    // remembered: one request in all.
    assert_eq!(documents.fetches(), 1);
}

async fn an_allow_listed_host_is_shown_as_verified(backend: Backend) {
    let app = development(backend)
        .configure(|config| {
            config.metadata_documents.trusted_hosts = vec!["127.0.0.1".to_owned()];
        })
        .start()
        .await;
    let documents = DocumentServer::start().await;
    let client = documents.client("/client.json");
    let email = "trusted@example.com";
    user(&app, email).await;
    let browser = Browser::new(&app);
    let consent = browser
        .authorize_and_sign_in(&AuthRequest::new(&client), email)
        .await;
    assert!(consent.is_consent(), "{}", consent.body);
    assert!(consent.body.contains("Verified app"), "{}", consent.body);
    assert!(!consent.body.contains("Unverified app"));
    assert!(consent.body.contains("class=\"client-host\">127.0.0.1<"));
}

async fn max_age_is_respected_and_a_refetch_keeps_the_grants(backend: Backend) {
    let app = development(backend).start().await;
    let documents = DocumentServer::start().await;
    let client = documents.client("/client.json");
    let body = app.code_grant(&client, "read").await;
    assert_eq!(documents.fetches(), 1);

    // Within max-age=3600 (and past the 30 s in-process cache), the stored
    // copy is used: no fetch.
    app.clock.advance(std::time::Duration::from_secs(3599));
    let refresh = |token: String| {
        let app = &app;
        let client = &client;
        async move {
            json(
                app.token(
                    client,
                    &[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", &token),
                        ("resource", crate::support::MCP),
                    ],
                )
                .await,
            )
            .await
        }
    };
    let (status, refreshed) = refresh(body["refresh_token"].as_str().unwrap().to_owned()).await;
    assert_eq!(status, 200, "{refreshed}");
    assert_eq!(documents.fetches(), 1);

    // Stale: fetched again, and the record is replaced in place, so the
    // refresh-token family survives.
    app.clock.advance(std::time::Duration::from_secs(2));
    let (status, again) = refresh(refreshed["refresh_token"].as_str().unwrap().to_owned()).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(documents.fetches(), 2);
    let record = app
        .store()
        .find_client(&client.client_id)
        .await
        .unwrap()
        .unwrap();
    assert!(record.expires_at.unwrap() > app.service.now());
}

backend_tests!(
    a_document_client_completes_the_code_flow_refreshes_and_revokes,
    max_age_is_respected_and_a_refetch_keeps_the_grants,
    document_failures_are_a_page_at_authorize_and_invalid_client_at_token,
    an_allow_listed_host_is_shown_as_verified,
);
