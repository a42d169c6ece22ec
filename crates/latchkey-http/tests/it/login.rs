//! Sign-in, sessions and form protection over HTTP: one answer for every
//! failed sign-in, the lock-out, disabled users, cookie attributes for
//! http and https issuers, idle and absolute timeouts, sign-out, a new
//! session on every sign-in, and the CSRF and Origin checks.

use std::time::Duration;

use latchkey_service::accounts::UserAdmin;

use crate::backend_tests;
use crate::browser::{AuthRequest, Browser, PASSWORD, user};
use crate::support::{Backend, TestApp};

/// The sign-in page for /account, and a browser holding its cookie.
async fn account_login(browser: &Browser<'_>) -> crate::browser::Page {
    let page = browser.get("/account").await;
    assert_eq!(page.status, 200);
    assert!(page.is_login(), "{}", page.body);
    page
}

async fn every_failed_sign_in_gets_the_same_answer(backend: Backend) {
    let app = TestApp::start(backend).await;
    user(&app, "ada@example.org").await;
    let disabled = user(&app, "bob@example.org").await;
    UserAdmin::new(app.store(), app.clock.clone())
        .set_disabled(&disabled, true)
        .await
        .unwrap();
    let browser = Browser::new(&app);
    let login = account_login(&browser).await;
    let mut answers = Vec::new();
    for (email, password) in [
        ("ada@example.org", "wrong password"),
        ("nobody@example.org", "wrong password"),
        ("bob@example.org", PASSWORD),
    ] {
        let page = browser.sign_in(&login, email, password).await;
        assert_eq!(page.status, 200, "{email}");
        assert!(page.is_login());
        assert!(page.body.contains("The email or password is incorrect."));
        assert!(page.body.contains("aria-invalid=\"true\""));
        assert!(
            page.set_cookies()
                .iter()
                .all(|cookie| !cookie.contains("session"))
        );
        // The same page but for the email typed back into the form.
        answers.push(page.body.replace(email, "EMAIL"));
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[1], answers[2]);

    let page = browser.sign_in(&login, "ada@example.org", PASSWORD).await;
    assert_eq!(page.location(), "/account");
    let account = browser.follow(&page).await;
    assert!(account.body.contains("Connected apps"), "{}", account.body);
}

async fn too_many_failures_lock_the_account_and_say_when_to_retry(backend: Backend) {
    let app = TestApp::start(backend).await;
    user(&app, "ada@example.org").await;
    let browser = Browser::new(&app);
    let login = account_login(&browser).await;
    for _ in 0..5 {
        let page = browser
            .sign_in(&login, "ada@example.org", "guess guess")
            .await;
        assert_eq!(page.status, 200);
    }
    let locked = browser.sign_in(&login, "ADA@example.org", PASSWORD).await;
    assert_eq!(locked.status, 429);
    assert!(locked.is_login());
    // The sliding window decides the wait: the rest of the current
    // 15-minute window plus a fifth of the next (5 failures, room for 4).
    let retry_after: u64 = locked.header("retry-after").unwrap().parse().unwrap();
    assert!((180..=1080).contains(&retry_after), "{retry_after}");
    let message = latchkey_service::accounts::retry_message(Duration::from_secs(retry_after));
    assert!(
        message.ends_with(" minutes.") || message.ends_with(" minute."),
        "{message}"
    );
    assert!(
        locked.body.contains(&message),
        "{message} missing:\n{}",
        locked.body
    );
    locked.assert_page_headers();
    app.clock.advance(Duration::from_secs(retry_after));
    let page = browser.sign_in(&login, "ada@example.org", PASSWORD).await;
    assert_eq!(page.status, 303, "{}", page.body);
}

async fn cookies_use_host_prefix_and_secure_with_an_https_issuer(backend: Backend) {
    let app = TestApp::builder(backend).https_issuer().start().await;
    assert!(app.issuer.starts_with("https://127.0.0.1:"));
    user(&app, "ada@example.org").await;
    let browser = Browser::new(&app);
    let login = account_login(&browser).await;
    let csrf = login.set_cookies().join("\n");
    assert!(
        csrf.starts_with("__Host-latchkey-csrf=")
            && csrf.ends_with("; Path=/; Max-Age=86400; HttpOnly; SameSite=Lax; Secure"),
        "{csrf}"
    );
    // The Origin check compares with the https origin.
    let refused = browser
        .post_with(
            "/login",
            &[
                ("email", "ada@example.org"),
                ("password", PASSWORD),
                ("csrf", &login.input("csrf")),
                ("request", ""),
            ],
            &[("origin", &app.base)],
        )
        .await;
    assert_eq!(refused.status, 403, "http://… is not the issuer's origin");
    let page = browser
        .post_with(
            "/login",
            &[
                ("email", "ada@example.org"),
                ("password", PASSWORD),
                ("csrf", &login.input("csrf")),
                ("request", ""),
            ],
            &[("origin", &app.issuer)],
        )
        .await;
    let session = page.set_cookies().join("\n");
    assert!(
        session.starts_with("__Host-latchkey-session=")
            && session.ends_with("; Path=/; Max-Age=43200; HttpOnly; SameSite=Lax; Secure"),
        "{session}"
    );
    assert!(!session.contains("Domain"));
    // A cookie under the plain name is not a session here.
    let value = browser.cookie("__Host-latchkey-session").unwrap();
    browser.set_cookie("__Host-latchkey-session", None);
    browser.set_cookie("latchkey-session", Some(&value));
    assert!(browser.get("/account").await.is_login());
    browser.set_cookie("__Host-latchkey-session", Some(&value));
    assert!(!browser.get("/account").await.is_login());
}

async fn sessions_end_after_the_idle_and_the_absolute_timeout(backend: Backend) {
    let app = TestApp::start(backend).await;
    user(&app, "ada@example.org").await;
    let browser = Browser::new(&app);
    let login = account_login(&browser).await;
    browser.sign_in(&login, "ada@example.org", PASSWORD).await;
    assert!(!browser.get("/account").await.is_login());

    // Idle: an hour without use ends it.
    app.clock.advance(Duration::from_secs(3600));
    assert!(browser.get("/account").await.is_login());

    // Absolute: used every 50 minutes, it still ends 12 hours after sign-in.
    let login = account_login(&browser).await;
    browser.sign_in(&login, "ada@example.org", PASSWORD).await;
    for _ in 0..14 {
        app.clock.advance(Duration::from_secs(50 * 60));
        assert!(!browser.get("/account").await.is_login());
    }
    app.clock.advance(Duration::from_secs(50 * 60));
    assert!(
        browser.get("/account").await.is_login(),
        "12 h 30 min after sign-in"
    );
}

async fn signing_out_ends_the_session_and_clears_the_cookie(backend: Backend) {
    let app = TestApp::start(backend).await;
    user(&app, "ada@example.org").await;
    let browser = Browser::new(&app);
    let login = account_login(&browser).await;
    browser.sign_in(&login, "ada@example.org", PASSWORD).await;
    let session = browser.cookie("latchkey-session").unwrap();
    let account = browser.get("/account").await;
    let csrf = account.input("csrf");

    let refused = browser.post("/logout", &[("csrf", "wrong")]).await;
    assert_eq!(refused.status, 403);
    assert!(!browser.get("/account").await.is_login());

    let page = browser.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("You are signed out"));
    page.assert_page_headers();
    assert!(
        page.set_cookies()
            .iter()
            .any(|cookie| cookie.starts_with("latchkey-session=; Path=/; Max-Age=0"))
    );
    assert!(browser.get("/account").await.is_login());
    // The old cookie value is dead, not just forgotten by the browser.
    browser.set_cookie("latchkey-session", Some(&session));
    assert!(browser.get("/account").await.is_login());
}

async fn every_sign_in_starts_a_new_session(backend: Backend) {
    let app = TestApp::start(backend).await;
    user(&app, "ada@example.org").await;
    let browser = Browser::new(&app);
    // A value planted before sign-in (session fixation) is replaced.
    browser.set_cookie("latchkey-session", Some(&"A".repeat(43)));
    let login = account_login(&browser).await;
    browser.sign_in(&login, "ada@example.org", PASSWORD).await;
    let first = browser.cookie("latchkey-session").unwrap();
    assert_ne!(first, "A".repeat(43));
    assert!(!browser.get("/account").await.is_login());
    browser.set_cookie("latchkey-session", None);
    let login = account_login(&browser).await;
    browser.sign_in(&login, "ada@example.org", PASSWORD).await;
    let second = browser.cookie("latchkey-session").unwrap();
    assert_ne!(first, second);
}

async fn forms_without_a_valid_csrf_token_or_from_elsewhere_are_refused(backend: Backend) {
    let app = TestApp::start(backend).await;
    let client = app.public_client().await;
    user(&app, "ada@example.org").await;
    let browser = Browser::new(&app);

    // The sign-in form.
    let login = account_login(&browser).await;
    let fields = |csrf: &str| {
        vec![
            ("email".to_owned(), "ada@example.org".to_owned()),
            ("password".to_owned(), PASSWORD.to_owned()),
            ("csrf".to_owned(), csrf.to_owned()),
            ("request".to_owned(), String::new()),
        ]
    };
    let send = |fields: Vec<(String, String)>, headers: Vec<(&'static str, String)>| {
        let browser = &browser;
        async move {
            let pairs: Vec<(&str, &str)> = fields
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str()))
                .collect();
            let headers: Vec<(&str, &str)> = headers
                .iter()
                .map(|(name, value)| (*name, value.as_str()))
                .collect();
            browser.post_with("/login", &pairs, &headers).await
        }
    };
    let chromium = || {
        vec![
            ("origin", "null".to_owned()),
            ("sec-fetch-site", "same-origin".to_owned()),
        ]
    };
    let csrf = login.input("csrf");
    let mut missing = fields(&csrf);
    missing.retain(|(name, _)| name != "csrf");
    for (name, fields, headers) in [
        ("missing token", missing, chromium()),
        ("wrong token", fields("AAAA"), chromium()),
        (
            "token for another request",
            {
                let mut other = fields(&csrf);
                other[3].1 = "some-handle".to_owned();
                other
            },
            chromium(),
        ),
        (
            "another origin",
            fields(&csrf),
            vec![("origin", "https://evil.example".to_owned())],
        ),
        (
            "a cross-site post",
            fields(&csrf),
            vec![
                ("origin", "null".to_owned()),
                ("sec-fetch-site", "cross-site".to_owned()),
            ],
        ),
        (
            "an opaque origin without fetch metadata",
            fields(&csrf),
            vec![("origin", "null".to_owned())],
        ),
    ] {
        let page = send(fields, headers).await;
        assert_eq!(page.status, 403, "{name}: {}", page.body);
        assert!(
            page.body.contains("This form could not be accepted"),
            "{name}"
        );
        assert!(
            page.set_cookies()
                .iter()
                .all(|cookie| !cookie.contains("session"))
        );
        page.assert_page_headers();
    }
    // Without the cookie the token is worthless.
    let cookie = browser.cookie("latchkey-csrf").unwrap();
    browser.set_cookie("latchkey-csrf", None);
    assert_eq!(send(fields(&csrf), chromium()).await.status, 403);
    browser.set_cookie("latchkey-csrf", Some(&cookie));
    // The real Origin of the issuer is accepted too.
    let page = send(fields(&csrf), vec![("origin", app.base.clone())]).await;
    assert_eq!(page.status, 303, "{}", page.body);

    // The consent form.
    let consent = browser.get(&AuthRequest::new(&client).path()).await;
    assert!(consent.is_consent(), "{}", consent.body);
    let request = consent.input("request");
    for (name, csrf, headers) in [
        ("wrong token", "AAAA".to_owned(), chromium()),
        (
            "another origin",
            consent.input("csrf"),
            vec![("origin", "https://evil.example".to_owned())],
        ),
    ] {
        let pairs = [
            ("csrf", csrf.as_str()),
            ("request", request.as_str()),
            ("decision", "approve"),
        ];
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        let page = browser.post_with("/consent", &pairs, &headers).await;
        assert_eq!(page.status, 403, "{name}");
    }
    // The refused posts used nothing up: the right one still works.
    let approved = browser.decide(&consent, "approve").await;
    assert_eq!(approved.status, 303, "{}", approved.body);

    // Disconnecting an app.
    let page = browser
        .post(
            "/account/revoke",
            &[("csrf", "AAAA"), ("client_id", &client.client_id)],
        )
        .await;
    assert_eq!(page.status, 403);
    let account = browser.get("/account").await;
    assert!(account.body.contains(&client.client_id), "still connected");
}

backend_tests!(
    every_failed_sign_in_gets_the_same_answer,
    too_many_failures_lock_the_account_and_say_when_to_retry,
    cookies_use_host_prefix_and_secure_with_an_https_issuer,
    sessions_end_after_the_idle_and_the_absolute_timeout,
    signing_out_ends_the_session_and_clears_the_cookie,
    every_sign_in_starts_a_new_session,
    forms_without_a_valid_csrf_token_or_from_elsewhere_are_refused,
);
