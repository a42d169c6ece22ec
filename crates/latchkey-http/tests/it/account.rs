//! The connected-apps page and disconnecting an app, what the consent page
//! shows for a verified client with configured descriptions, the security
//! headers of every page, the stylesheet, and template overrides.

use latchkey_service::config::{ConfiguredResource, ResourceRegistry};

use crate::backend_tests;
use crate::browser::{AuthRequest, Browser, PASSWORD, assert_code_redirect, exchange, user};
use crate::support::{Backend, MCP, REDIRECT_URI, TestApp, json};

async fn the_account_page_lists_apps_and_disconnecting_revokes_refresh_tokens(backend: Backend) {
    let app = TestApp::start(backend).await;
    let client = app.public_client().await;
    user(&app, "ada@example.org").await;
    let browser = Browser::new(&app);
    let request = AuthRequest::new(&client).set("scope", "read offline_access");
    let consent = browser
        .authorize_and_sign_in(&request, "ada@example.org")
        .await;
    let code = assert_code_redirect(&app, &browser.decide(&consent, "approve").await);
    let (status, tokens) = exchange(&app, &client, &request, &code).await;
    assert_eq!(status, 200, "{tokens}");

    let account = browser.get("/account").await;
    assert_eq!(account.status, 200);
    account.assert_page_headers();
    for expected in [
        "ada@example.org",
        "test public",
        client.client_id.as_str(),
        MCP,
        "<code class=\"scope-name\">read</code>",
        "<code class=\"scope-name\">offline_access</code>",
        "Unverified app",
        "Disconnect test public",
        " UTC",
    ] {
        assert!(
            account.body.contains(expected),
            "{expected} missing:\n{}",
            account.body
        );
    }
    let disconnected = browser
        .post(
            "/account/revoke",
            &[
                ("csrf", &account.input("csrf")),
                ("client_id", &client.client_id),
            ],
        )
        .await;
    assert_eq!(disconnected.location(), "/account?disconnected=1");
    let after = browser.follow(&disconnected).await;
    assert!(
        after.body.contains("The app was disconnected."),
        "{}",
        after.body
    );
    assert!(after.body.contains("No app is connected to your account."));
    assert!(!after.body.contains(&client.client_id));

    // The refresh token is dead, and the next authorization asks again.
    let (status, body) = json(
        app.token(
            &client,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert!(browser.get(&request.path()).await.is_consent());
}

async fn a_verified_client_with_described_scopes_and_a_named_resource(backend: Backend) {
    let app = TestApp::builder(backend)
        .configure(|config| {
            config.resources = ResourceRegistry::new([ConfiguredResource::new(
                MCP,
                &["read", "write"],
                Some("Team files".to_owned()),
            )
            .unwrap()])
            .unwrap();
            config
                .scope_descriptions
                .insert("read".to_owned(), "Read your files".to_owned());
        })
        .start()
        .await;
    let admin = latchkey_service::admin::ClientAdmin::new(app.store(), app.clock.clone());
    let added = admin
        .add(&latchkey_service::admin::NewClient {
            name: "Ops <Console>".to_owned(),
            redirect_uris: vec![REDIRECT_URI.to_owned()],
            ..Default::default()
        })
        .await
        .unwrap();
    let client = crate::support::Client {
        client_id: added.client_id,
        client_secret: None,
    };
    user(&app, "ada@example.org").await;
    let browser = Browser::new(&app);
    let consent = browser
        .authorize_and_sign_in(
            &AuthRequest::new(&client).set("scope", "read write"),
            "ada@example.org",
        )
        .await;
    assert!(consent.is_consent(), "{}", consent.body);
    for expected in [
        "Verified app",
        "Read your files",
        "<li><code class=\"scope-name\">write</code></li>",
        "<strong>Team files</strong>",
        // Client-supplied text is escaped.
        "Ops &lt;Console&gt;",
    ] {
        assert!(
            consent.body.contains(expected),
            "{expected} missing:\n{}",
            consent.body
        );
    }
    assert!(!consent.body.contains("Ops <Console>"));
    assert!(
        !consent.body.contains(">write</span>"),
        "no description repeating the name"
    );
    assert!(!consent.body.contains("Latchkey has not verified this app"));
    // No logo registered: the initial instead, never an image.
    assert!(
        consent
            .body
            .contains("<span class=\"client-initial\" aria-hidden=\"true\">O</span>")
    );
    assert!(!consent.body.contains("<img"));
}

async fn every_page_and_response_carries_its_security_headers(backend: Backend) {
    let app = TestApp::start(backend).await;
    let client = app.public_client().await;
    user(&app, "ada@example.org").await;
    let browser = Browser::new(&app);
    let login = browser.get(&AuthRequest::new(&client).path()).await;
    login.assert_page_headers();
    let consent = browser
        .follow(&browser.sign_in(&login, "ada@example.org", PASSWORD).await)
        .await;
    consent.assert_page_headers();
    let policy = consent.header("content-security-policy").unwrap();
    assert!(
        policy.contains("form-action 'self' http://127.0.0.1:33418;"),
        "{policy}"
    );
    browser.get("/account").await.assert_page_headers();
    let error = browser.get("/authorize?client_id=nobody").await;
    error.assert_page_headers();
    assert_eq!(
        error.header("content-security-policy").unwrap(),
        "default-src 'none'; style-src 'self'; img-src 'self' https: data:; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    );

    // The stylesheet the pages link to, cached for a year under its version.
    let link_start = consent.body.find("href=\"/static/latchkey.css?v=").unwrap() + 6;
    let link_end = consent.body[link_start..].find('"').unwrap() + link_start;
    let css = browser.get(&consent.body[link_start..link_end]).await;
    assert_eq!(css.status, 200);
    assert_eq!(
        css.header("content-type").as_deref(),
        Some("text/css; charset=utf-8")
    );
    assert_eq!(
        css.header("cache-control").as_deref(),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(
        css.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
    assert!(css.body.contains(":focus-visible"));
    let unversioned = browser.get("/static/latchkey.css").await;
    assert_eq!(
        unversioned.header("cache-control").as_deref(),
        Some("no-cache")
    );

    // JSON endpoints get nosniff too, and pages get no CORS.
    let metadata = browser.get("/.well-known/oauth-authorization-server").await;
    assert_eq!(
        metadata.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
    let page = app
        .http
        .get(app.url("/account"))
        .header("origin", "https://inspector.example")
        .send()
        .await
        .unwrap();
    assert!(page.headers().get("access-control-allow-origin").is_none());
}

async fn templates_can_be_overridden_from_a_directory(backend: Backend) {
    let directory = tempfile_dir();
    std::fs::write(
        directory.join("error.html"),
        "{% extends \"base.html\" %}{% block content %}<main id=\"error\">Custom: {{ title }}</main>{% endblock content %}",
    )
    .unwrap();
    let path = directory.clone();
    let app = TestApp::builder(backend)
        .http(move |http| http.templates_dir = Some(path))
        .start()
        .await;
    let page = Browser::new(&app).get("/authorize?client_id=nobody").await;
    assert_eq!(page.status, 400);
    assert!(
        page.body
            .contains("Custom: This app is not registered here"),
        "{}",
        page.body
    );
    // The other templates are the embedded ones.
    assert!(Browser::new(&app).get("/account").await.is_login());
    std::fs::remove_dir_all(directory).unwrap();
}

/// A fresh directory under the system temp dir.
fn tempfile_dir() -> std::path::PathBuf {
    let directory = std::env::temp_dir().join(format!(
        "latchkey-templates-{}",
        crate::support::random_suffix()
    ));
    std::fs::create_dir_all(&directory).unwrap();
    directory
}

backend_tests!(
    the_account_page_lists_apps_and_disconnecting_revokes_refresh_tokens,
    a_verified_client_with_described_scopes_and_a_named_resource,
    every_page_and_response_carries_its_security_headers,
    templates_can_be_overridden_from_a_directory,
);
