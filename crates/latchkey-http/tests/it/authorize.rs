//! The authorization endpoint over HTTP: pages before the redirect URI is
//! trusted, error redirects after, the whole flow through sign-in and
//! consent to tokens, denial, `prompt`, remembered consent, and POST.

use std::time::Duration;

use crate::backend_tests;
use crate::browser::{
    AuthRequest, Browser, PASSWORD, assert_code_redirect, assert_error_redirect, exchange,
    named_client, user,
};
use crate::support::{Backend, MCP, REDIRECT_URI, TestApp, json};

async fn unknown_clients_and_bad_redirects_get_a_page_and_never_a_redirect(backend: Backend) {
    let app = TestApp::start(backend).await;
    let client = app.public_client().await;
    let browser = Browser::new(&app);
    let cases = [
        (
            "unknown client",
            AuthRequest::new(&client).set("client_id", "no-such-client"),
            "This app is not registered here",
        ),
        (
            "missing client_id",
            AuthRequest::new(&client).without("client_id"),
            "This sign-in link is not valid",
        ),
        (
            "unregistered redirect",
            AuthRequest::new(&client).set("redirect_uri", "https://evil.example/callback"),
            "return address is not registered",
        ),
        (
            "another path on the loopback host",
            AuthRequest::new(&client).set("redirect_uri", "http://127.0.0.1:33418/other"),
            "return address is not registered",
        ),
        (
            "a repeated parameter",
            AuthRequest::new(&client).repeat("state", "again"),
            "This sign-in link is not valid",
        ),
        (
            "a repeated redirect_uri",
            AuthRequest::new(&client).repeat("redirect_uri", "https://evil.example/cb"),
            "This sign-in link is not valid",
        ),
    ];
    for (name, request, title) in cases {
        let page = browser.get(&request.path()).await;
        assert_eq!(page.status, 400, "{name}");
        assert!(page.header("location").is_none(), "{name}");
        assert!(page.is_error(), "{name}: {}", page.body);
        assert!(page.body.contains(title), "{name}: {}", page.body);
        assert!(page.body.contains("What to do next"), "{name}");
        page.assert_page_headers();
    }
    // A malformed query string is a page too.
    let page = browser.get("/authorize?client_id=%ZZ").await;
    assert_eq!(page.status, 400);
    assert!(page.is_error());
}

async fn later_errors_redirect_with_error_state_and_iss(backend: Backend) {
    let app = TestApp::start(backend).await;
    let client = app.public_client().await;
    let browser = Browser::new(&app);
    let cases = [
        (
            AuthRequest::new(&client).without("code_challenge"),
            "invalid_request",
        ),
        (
            AuthRequest::new(&client).without("code_challenge_method"),
            "invalid_request",
        ),
        (
            AuthRequest::new(&client).set("code_challenge_method", "plain"),
            "invalid_request",
        ),
        (
            AuthRequest::new(&client).set("response_type", "token"),
            "unsupported_response_type",
        ),
        (
            AuthRequest::new(&client).without("resource"),
            "invalid_target",
        ),
        (
            AuthRequest::new(&client).set("resource", "https://unknown.example/mcp"),
            "invalid_target",
        ),
        (
            AuthRequest::new(&client).set("scope", "read delete"),
            "invalid_scope",
        ),
        (
            AuthRequest::new(&client).set("scope", "files"),
            "invalid_scope",
        ),
    ];
    for (request, error) in cases {
        let page = browser.get(&request.path()).await;
        assert_error_redirect(&app, &page, error);
        assert_eq!(page.header("cache-control").as_deref(), Some("no-store"));
        assert_eq!(
            page.header("referrer-policy").as_deref(),
            Some("no-referrer")
        );
    }
}

async fn the_whole_flow_signs_in_consents_and_issues_bound_tokens(backend: Backend) {
    let app = TestApp::start(backend).await;
    let client = named_client(&app, "Claude Desktop").await;
    let user_id = user(&app, "ada@example.org").await;
    let browser = Browser::new(&app);
    let request = AuthRequest::new(&client).set("scope", "read offline_access");

    let login = browser.get(&request.path()).await;
    assert_eq!(login.status, 200);
    assert!(login.is_login());
    login.assert_page_headers();
    assert!(login.body.contains("Claude Desktop"), "{}", login.body);
    // The form's redirect chain ends at the client: form-action allows it.
    assert!(
        login
            .header("content-security-policy")
            .unwrap()
            .contains("form-action 'self' http://127.0.0.1:33418;")
    );
    let csrf_cookie = login
        .set_cookies()
        .into_iter()
        .find(|cookie| cookie.starts_with("latchkey-csrf="))
        .unwrap();
    assert!(
        csrf_cookie.ends_with("; Path=/; Max-Age=86400; HttpOnly; SameSite=Lax"),
        "{csrf_cookie}"
    );

    let signed_in = browser.sign_in(&login, " Ada@Example.org", PASSWORD).await;
    let location = signed_in.location();
    assert!(location.starts_with("/consent?request="), "{location}");
    let session_cookie = signed_in
        .set_cookies()
        .into_iter()
        .find(|cookie| cookie.starts_with("latchkey-session="))
        .unwrap();
    assert!(
        session_cookie.ends_with("; Path=/; Max-Age=43200; HttpOnly; SameSite=Lax"),
        "no Secure on a plain-http loopback issuer: {session_cookie}"
    );

    let consent = browser.follow(&signed_in).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    consent.assert_page_headers();
    for expected in [
        "Claude Desktop",
        "<p class=\"redirect-host\">127.0.0.1</p>",
        REDIRECT_URI,
        &client.client_id,
        "This app runs on your computer",
        "Latchkey has not verified this app",
        "Unverified app",
        "<img class=\"client-logo\" src=\"https://app.example/logo.png\"",
        "Stay connected when you are not using the app",
        "<code class=\"scope-name\">read</code>",
        MCP,
        "ada@example.org",
    ] {
        assert!(
            consent.body.contains(expected),
            "{expected} missing:\n{}",
            consent.body
        );
    }

    let approved = browser.decide(&consent, "approve").await;
    let code = assert_code_redirect(&app, &approved);
    let (status, tokens) = exchange(&app, &client, &request, &code).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["scope"], "read offline_access");
    let (_, claims) = app
        .verify_with_jwks(tokens["access_token"].as_str().unwrap())
        .await;
    assert_eq!(claims["aud"], MCP);
    assert_eq!(claims["sub"], user_id.as_str());
    assert_eq!(claims["client_id"], client.client_id.as_str());
    assert_eq!(claims["iss"], app.issuer.as_str());

    // The refresh token works.
    let (status, refreshed) = json(
        app.token(
            &client,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
                ("resource", MCP),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{refreshed}");

    // The decision was single use: posting it again is an expired request.
    let again = browser.decide(&consent, "approve").await;
    assert_eq!(again.status, 400);
    assert!(again.body.contains("This request has expired"));
    // And the code is single use.
    let (status, body) = exchange(&app, &client, &request, &code).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

async fn denying_sends_access_denied_back(backend: Backend) {
    let app = TestApp::start(backend).await;
    let client = app.public_client().await;
    user(&app, "ada@example.org").await;
    let browser = Browser::new(&app);
    let consent = browser
        .authorize_and_sign_in(&AuthRequest::new(&client), "ada@example.org")
        .await;
    let denied = browser.decide(&consent, "deny").await;
    assert_error_redirect(&app, &denied, "access_denied");
    // Nothing was remembered: the next request asks again.
    let page = browser.get(&AuthRequest::new(&client).path()).await;
    assert!(page.is_consent(), "{}", page.body);
}

async fn prompt_none_answers_without_a_page(backend: Backend) {
    let app = TestApp::start(backend).await;
    let client = app.public_client().await;
    user(&app, "ada@example.org").await;
    let browser = Browser::new(&app);
    let silent = || AuthRequest::new(&client).set("prompt", "none");

    let page = browser.get(&silent().path()).await;
    assert_error_redirect(&app, &page, "login_required");

    // Signed in, with the consent page left open: consent_required.
    let consent = browser
        .authorize_and_sign_in(&AuthRequest::new(&client), "ada@example.org")
        .await;
    let page = browser.get(&silent().path()).await;
    assert_error_redirect(&app, &page, "consent_required");

    // With consent given, prompt=none gets a code straight away.
    let approved = browser.decide(&consent, "approve").await;
    assert_code_redirect(&app, &approved);
    let page = browser.get(&silent().path()).await;
    assert_code_redirect(&app, &page);
}

async fn prompt_login_and_prompt_consent_force_their_pages(backend: Backend) {
    let app = TestApp::start(backend).await;
    let client = app.public_client().await;
    user(&app, "ada@example.org").await;
    let browser = Browser::new(&app);
    let consent = browser
        .authorize_and_sign_in(&AuthRequest::new(&client), "ada@example.org")
        .await;
    assert_code_redirect(&app, &browser.decide(&consent, "approve").await);
    // Remembered: no page at all.
    assert_code_redirect(&app, &browser.get(&AuthRequest::new(&client).path()).await);

    let forced = browser
        .get(&AuthRequest::new(&client).set("prompt", "consent").path())
        .await;
    assert!(forced.is_consent(), "{}", forced.body);

    let login = browser
        .get(&AuthRequest::new(&client).set("prompt", "login").path())
        .await;
    assert!(
        login.is_login(),
        "a session is not enough with prompt=login"
    );
    app.clock.advance(Duration::from_secs(2));
    let signed_in = browser.sign_in(&login, "ada@example.org", PASSWORD).await;
    // After the fresh sign-in, the remembered consent lets it through.
    let page = browser.follow(&signed_in).await;
    assert_code_redirect(&app, &page);
}

async fn remembered_consent_skips_the_page_until_scopes_grow_or_it_expires(backend: Backend) {
    let app = TestApp::start(backend).await;
    let client = app.public_client().await;
    user(&app, "ada@example.org").await;
    let browser = Browser::new(&app);
    let consent = browser
        .authorize_and_sign_in(&AuthRequest::new(&client), "ada@example.org")
        .await;
    assert_code_redirect(&app, &browser.decide(&consent, "approve").await);

    // Same scopes: straight back with a code, and the code works.
    let request = AuthRequest::new(&client);
    let page = browser.get(&request.path()).await;
    let code = assert_code_redirect(&app, &page);
    let (status, body) = exchange(&app, &client, &request, &code).await;
    assert_eq!(status, 200, "{body}");
    // Fewer scopes than consented: also no page.
    let narrower = AuthRequest::new(&client).set("scope", "read");
    assert_code_redirect(&app, &browser.get(&narrower.path()).await);

    // More scopes: asked again, and approving remembers both.
    let wider = AuthRequest::new(&client).set("scope", "read write");
    let page = browser.get(&wider.path()).await;
    assert!(page.is_consent(), "{}", page.body);
    assert_code_redirect(&app, &browser.decide(&page, "approve").await);
    assert_code_redirect(&app, &browser.get(&wider.path()).await);

    // Thirty days later the consent has expired: sign in again, asked again.
    app.clock.advance(Duration::from_secs(30 * 24 * 3600));
    let page = browser
        .authorize_and_sign_in(&AuthRequest::new(&client), "ada@example.org")
        .await;
    assert!(page.is_consent(), "{}", page.body);
}

async fn post_authorize_works_like_get(backend: Backend) {
    let app = TestApp::start(backend).await;
    let client = app.public_client().await;
    user(&app, "ada@example.org").await;
    let browser = Browser::new(&app);
    let request = AuthRequest::new(&client);
    let login = browser.post_with("/authorize", &request.pairs(), &[]).await;
    assert_eq!(login.status, 200);
    assert!(login.is_login(), "{}", login.body);
    let signed_in = browser.sign_in(&login, "ada@example.org", PASSWORD).await;
    let consent = browser.follow(&signed_in).await;
    let code = assert_code_redirect(&app, &browser.decide(&consent, "approve").await);
    let (status, body) = exchange(&app, &client, &request, &code).await;
    assert_eq!(status, 200, "{body}");

    let bad = AuthRequest::new(&client).set("code_challenge_method", "plain");
    assert_error_redirect(
        &app,
        &browser.post_with("/authorize", &bad.pairs(), &[]).await,
        "invalid_request",
    );
    let unknown = AuthRequest::new(&client).set("client_id", "nobody");
    let page = browser.post_with("/authorize", &unknown.pairs(), &[]).await;
    assert_eq!(page.status, 400);
    assert!(page.is_error());
}

async fn a_stale_or_forged_request_handle_is_an_error_page(backend: Backend) {
    let app = TestApp::start(backend).await;
    let client = app.public_client().await;
    user(&app, "ada@example.org").await;
    let browser = Browser::new(&app);
    let page = browser.get("/consent?request=made-up").await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("This request has expired"));

    let login = browser.get(&AuthRequest::new(&client).path()).await;
    // Ten minutes later the request is gone: signing in says so.
    app.clock.advance(Duration::from_secs(600));
    let signed_in = browser.sign_in(&login, "ada@example.org", PASSWORD).await;
    assert_eq!(signed_in.status, 400);
    assert!(
        signed_in.body.contains("This request has expired"),
        "{}",
        signed_in.body
    );
}

backend_tests!(
    unknown_clients_and_bad_redirects_get_a_page_and_never_a_redirect,
    later_errors_redirect_with_error_state_and_iss,
    the_whole_flow_signs_in_consents_and_issues_bound_tokens,
    denying_sends_access_denied_back,
    prompt_none_answers_without_a_page,
    prompt_login_and_prompt_consent_force_their_pages,
    remembered_consent_skips_the_page_until_scopes_grow_or_it_expires,
    post_authorize_works_like_get,
    a_stale_or_forged_request_handle_is_an_error_page,
);
