//! Sign-in through an upstream OpenID Connect provider, over real HTTP
//! against a real one: `e2e/fixtures/upstream-op.mjs` (node-oidc-provider)
//! on a loopback port, started per test by `upstream_op::UpstreamOp`.
//!
//! A test plays the browser on both sides: Latchkey's pages through
//! `browser::Browser`, the provider's through [`OpBrowser`] (its own
//! cookie jar, redirects followed by hand until one leads back to
//! Latchkey's callback). Covered: linking by subject, by verified email
//! (flag on), refusal of a verified email with the flag off and of an
//! unverified email, auto-provisioning on and off, ID tokens with a bad
//! signature, a wrong `nonce` and a wrong `aud`, the token endpoint down
//! during the exchange and a retry that succeeds, `state` replay and
//! another browser's callback, an `error` from the provider, and
//! password sign-in turned off. Every success ends with the MCP client
//! exchanging its code for a Latchkey JWT whose `aud` is the resource and
//! whose `sub` is the local user id.

use std::collections::BTreeMap;
use std::sync::Mutex;

use latchkey_protocol::secret::SecretString;
use latchkey_service::upstream::UpstreamProvider;
use latchkey_store::FederatedIdentityRecord;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};

use crate::backend_tests;
use crate::browser::{AuthRequest, Browser, Page, assert_code_redirect, exchange, query, user};
use crate::support::{Backend, Client, MCP, TestApp, form};
use crate::upstream_op::{ALICE, BOB, CAROL, DAVE, Tamper, UpstreamAccount, UpstreamOp};

/// Latchkey's client id and secret at the provider.
const CLIENT_ID: &str = "latchkey";
const CLIENT_SECRET: &str = "federation-test-client-secret";
/// The provider's id in Latchkey's configuration (and URLs).
const PROVIDER: &str = "corp";

/// Latchkey with one upstream provider, the provider, and an MCP client.
struct Federation {
    app: TestApp,
    op: UpstreamOp,
    client: Client,
}

/// Starts the provider and Latchkey, configured with `change` applied to
/// the provider's settings.
async fn federation(
    backend: Backend,
    change: impl FnOnce(&mut UpstreamProvider) + Send + 'static,
) -> Federation {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let callback = format!("{issuer}/login/upstream/{PROVIDER}/callback");
    let op = UpstreamOp::start(CLIENT_ID, CLIENT_SECRET, &[callback.as_str()]);
    let mut provider = UpstreamProvider::new(
        PROVIDER,
        op.issuer.clone(),
        CLIENT_ID,
        SecretString::new(CLIENT_SECRET),
    );
    provider.display_name = "Corp SSO".to_owned();
    change(&mut provider);
    let app = TestApp::builder(backend)
        .listener(listener)
        .configure(move |config| config.upstreams = vec![provider])
        .start()
        .await;
    assert_eq!(app.issuer, issuer);
    let client = app.public_client().await;
    Federation { app, op, client }
}

/// A browser on the provider's side: its own cookie jar, no automatic
/// redirects.
struct OpBrowser {
    http: reqwest::Client,
    cookies: Mutex<BTreeMap<String, String>>,
}

impl OpBrowser {
    fn new() -> OpBrowser {
        OpBrowser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: Mutex::new(BTreeMap::new()),
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> (u16, Option<String>, String) {
        let cookies = {
            let jar = self.cookies.lock().unwrap();
            jar.iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join("; ")
        };
        let request = if cookies.is_empty() {
            request
        } else {
            request.header(COOKIE, cookies)
        };
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get(LOCATION)
            .map(|value| value.to_str().unwrap().to_owned());
        for set_cookie in response.headers().get_all(SET_COOKIE) {
            let text = set_cookie.to_str().unwrap();
            let pair = text.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            let lower = text.to_ascii_lowercase();
            let mut jar = self.cookies.lock().unwrap();
            if value.is_empty()
                || lower.contains("max-age=0")
                || lower.contains("expires=thu, 01 jan 1970")
            {
                jar.remove(name.trim());
            } else {
                jar.insert(name.trim().to_owned(), value.to_owned());
            }
        }
        (status, location, response.text().await.unwrap())
    }

    /// Follows the provider's pages from `start` (its authorization URL),
    /// signing in as `account` when it asks, until a redirect leads to
    /// `back_to`; returns that URL.
    async fn sign_in(&self, start: &str, account: UpstreamAccount, back_to: &str) -> String {
        let mut url = reqwest::Url::parse(start).unwrap();
        let mut response = self.send(self.http.get(url.clone())).await;
        for _ in 0..12 {
            match response {
                (300..=399, Some(location), _) => {
                    let next = url.join(&location).unwrap();
                    if next.as_str().starts_with(back_to) {
                        return next.into();
                    }
                    url = next;
                    response = self.send(self.http.get(url.clone())).await;
                }
                (200, _, body) if body.contains("id=\"upstream-login\"") => {
                    let marker = "action=\"";
                    let start = body.find("id=\"upstream-login\"").unwrap();
                    let from = body[start..].find(marker).unwrap() + start + marker.len();
                    let end = body[from..].find('"').unwrap() + from;
                    url = url.join(&body[from..end]).unwrap();
                    response = self
                        .send(
                            self.http
                                .post(url.clone())
                                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                                .body(form(&[("login", account.login)])),
                        )
                        .await;
                }
                (status, _, body) => {
                    panic!("unexpected provider answer {status} at {url}:\n{body}")
                }
            }
        }
        panic!("the provider never redirected back to {back_to}");
    }
}

/// The callback URL prefix of the test's Latchkey.
fn callback_prefix(app: &TestApp) -> String {
    format!("{}/login/upstream/{PROVIDER}/callback", app.issuer)
}

/// Clicks "Continue with Corp SSO" (or a "Try again" button) on `page`:
/// the 303 to the provider.
async fn continue_upstream(browser: &Browser<'_>, page: &Page) -> String {
    let started = browser
        .post(
            &format!("/login/upstream/{PROVIDER}"),
            &[
                ("csrf", &page.input("csrf")),
                ("request", &page.input("request")),
            ],
        )
        .await;
    let location = started.location();
    assert!(
        location.contains("code_challenge_method=S256"),
        "{location}"
    );
    location
}

/// From `/authorize` through the provider as `account` to Latchkey's
/// callback; returns the callback's answer.
async fn through_the_provider(
    federation: &Federation,
    browser: &Browser<'_>,
    op_browser: &OpBrowser,
    request: &AuthRequest,
    account: UpstreamAccount,
) -> Page {
    let login = browser.get(&request.path()).await;
    assert_eq!(login.status, 200, "{}", login.body);
    assert!(
        login.body.contains(&format!(
            "<form class=\"upstream\" id=\"upstream-{PROVIDER}\""
        )),
        "{}",
        login.body
    );
    assert!(login.body.contains("Continue with Corp SSO"));
    // The redirect to the provider after the form post is allowed.
    let policy = login.header("content-security-policy").unwrap();
    assert!(policy.contains(&federation.op.issuer), "{policy}");
    let authorize = continue_upstream(browser, &login).await;
    let callback = op_browser
        .sign_in(&authorize, account, &callback_prefix(&federation.app))
        .await;
    browser.get(&callback).await
}

/// Approves consent after a successful callback and exchanges the code:
/// returns the verified access token's claims.
async fn consent_and_token(
    federation: &Federation,
    browser: &Browser<'_>,
    request: &AuthRequest,
    callback: &Page,
) -> serde_json::Value {
    let app = &federation.app;
    let next = callback.location();
    assert!(next.starts_with("/consent?request="), "{next}");
    assert!(
        callback
            .set_cookies()
            .iter()
            .any(|cookie| cookie.starts_with("latchkey-session=")),
        "a session starts"
    );
    let consent = browser.follow(callback).await;
    let redirected = if consent.is_consent() {
        browser.decide(&consent, "approve").await
    } else {
        consent
    };
    let code = assert_code_redirect(app, &redirected);
    let (status, body) = exchange(app, &federation.client, request, &code).await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap();
    let (_, claims) = app.verify_with_jwks(token).await;
    assert_eq!(claims["aud"], MCP, "{claims}");
    claims
}

/// Asserts an upstream failure page: `status`, no session, and whether it
/// offers "Try again".
fn assert_failure_page(page: &Page, status: u16, retry: bool) {
    assert_eq!(page.status, status, "{}", page.body);
    assert!(page.is_error(), "{}", page.body);
    page.assert_page_headers();
    assert!(
        page.set_cookies()
            .iter()
            .all(|cookie| !cookie.contains("session")),
        "no session on failure"
    );
    assert_eq!(
        page.body.contains("<form id=\"upstream-retry\""),
        retry,
        "{}",
        page.body
    );
}

async fn links_by_subject_and_the_client_gets_a_latchkey_token(backend: Backend) {
    let federation = federation(backend, |_| {}).await;
    let app = &federation.app;
    let user_id = user(app, "alice.local@example.org").await;
    app.store()
        .insert_identity(&FederatedIdentityRecord {
            issuer: federation.op.issuer.clone(),
            subject: ALICE.sub.to_owned(),
            user_id: user_id.clone(),
            email: None,
            created_at: app.service.now(),
        })
        .await
        .unwrap();
    let browser = Browser::new(app);
    let op_browser = OpBrowser::new();
    let request = AuthRequest::new(&federation.client);
    let callback = through_the_provider(&federation, &browser, &op_browser, &request, ALICE).await;
    let claims = consent_and_token(&federation, &browser, &request, &callback).await;
    assert_eq!(claims["sub"], user_id.as_str());
    assert_ne!(claims["sub"], ALICE.sub);

    // Signed in now: the connected-apps page shows the local user.
    let account = browser.get("/account").await;
    assert!(
        account.body.contains("alice.local@example.org"),
        "{}",
        account.body
    );
}

async fn links_by_verified_email_when_enabled(backend: Backend) {
    let federation = federation(backend, |provider| provider.link_by_verified_email = true).await;
    let app = &federation.app;
    // Stored in another case: matched case-insensitively.
    let user_id = user(app, "Carol@Example.com").await;
    let browser = Browser::new(app);
    let request = AuthRequest::new(&federation.client);
    let callback =
        through_the_provider(&federation, &browser, &OpBrowser::new(), &request, CAROL).await;
    let claims = consent_and_token(&federation, &browser, &request, &callback).await;
    assert_eq!(claims["sub"], user_id.as_str());
    let identity = app
        .store()
        .find_identity(&federation.op.issuer, CAROL.sub)
        .await
        .unwrap()
        .expect("the identity is linked");
    assert_eq!(identity.user_id, user_id);
    assert_eq!(identity.email.as_deref(), Some(CAROL.email));
}

async fn verified_email_without_the_flag_is_refused(backend: Backend) {
    let federation = federation(backend, |_| {}).await;
    let app = &federation.app;
    user(app, CAROL.email).await;
    let browser = Browser::new(app);
    let request = AuthRequest::new(&federation.client);
    let callback =
        through_the_provider(&federation, &browser, &OpBrowser::new(), &request, CAROL).await;
    assert_failure_page(&callback, 403, false);
    assert!(
        callback
            .body
            .contains("This account is not allowed to sign in here")
    );
    assert_eq!(
        app.store()
            .find_identity(&federation.op.issuer, CAROL.sub)
            .await
            .unwrap(),
        None
    );
}

async fn an_unverified_email_is_not_linked(backend: Backend) {
    let federation = federation(backend, |provider| {
        provider.link_by_verified_email = true;
        provider.auto_provision = true;
    })
    .await;
    let app = &federation.app;
    user(app, BOB.email).await;
    let browser = Browser::new(app);
    let request = AuthRequest::new(&federation.client);
    let callback =
        through_the_provider(&federation, &browser, &OpBrowser::new(), &request, BOB).await;
    assert_failure_page(&callback, 403, false);
    assert_eq!(
        app.store()
            .find_identity(&federation.op.issuer, BOB.sub)
            .await
            .unwrap(),
        None
    );
    assert_eq!(app.store().list_users().await.unwrap().len(), 1);
}

async fn auto_provisioning_creates_and_links_a_user(backend: Backend) {
    let federation = federation(backend, |provider| provider.auto_provision = true).await;
    let app = &federation.app;
    let browser = Browser::new(app);
    let request = AuthRequest::new(&federation.client);
    let callback =
        through_the_provider(&federation, &browser, &OpBrowser::new(), &request, DAVE).await;
    let claims = consent_and_token(&federation, &browser, &request, &callback).await;
    let user = app
        .store()
        .find_user_by_email(DAVE.email)
        .await
        .unwrap()
        .expect("the user is created");
    assert_eq!(
        user.password_hash, None,
        "upstream-only users have no password"
    );
    assert_eq!(claims["sub"], user.user_id.as_str());
    let identity = app
        .store()
        .find_identity(&federation.op.issuer, DAVE.sub)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(identity.user_id, user.user_id);
}

async fn without_auto_provisioning_an_unknown_identity_is_refused(backend: Backend) {
    let federation = federation(backend, |_| {}).await;
    let app = &federation.app;
    let browser = Browser::new(app);
    let request = AuthRequest::new(&federation.client);
    let callback =
        through_the_provider(&federation, &browser, &OpBrowser::new(), &request, DAVE).await;
    assert_failure_page(&callback, 403, false);
    assert!(app.store().list_users().await.unwrap().is_empty());
}

async fn tampered_id_tokens_are_refused_and_a_retry_succeeds(backend: Backend) {
    let federation = federation(backend, |provider| provider.auto_provision = true).await;
    let app = &federation.app;
    let browser = Browser::new(app);
    let op_browser = OpBrowser::new();
    let request = AuthRequest::new(&federation.client);
    let mut page = browser.get(&request.path()).await;
    for tamper in [Tamper::Signature, Tamper::Nonce, Tamper::Aud] {
        federation.op.set_mode(tamper, false);
        let authorize = continue_upstream(&browser, &page).await;
        let callback = op_browser
            .sign_in(&authorize, DAVE, &callback_prefix(app))
            .await;
        let refused = browser.get(&callback).await;
        assert_failure_page(&refused, 502, true);
        assert!(
            refused.body.contains("The sign-in could not be verified"),
            "{tamper:?}: {}",
            refused.body
        );
        assert!(
            app.store().list_users().await.unwrap().is_empty(),
            "{tamper:?}"
        );
        // The next attempt starts from the "Try again" button.
        page = refused;
    }
    federation.op.set_mode(Tamper::None, false);
    let authorize = continue_upstream(&browser, &page).await;
    let callback = op_browser
        .sign_in(&authorize, DAVE, &callback_prefix(app))
        .await;
    let callback = browser.get(&callback).await;
    consent_and_token(&federation, &browser, &request, &callback).await;
}

async fn the_token_endpoint_down_midway_then_a_retry_succeeds(backend: Backend) {
    let federation = federation(backend, |provider| provider.link_by_verified_email = true).await;
    let app = &federation.app;
    let user_id = user(app, ALICE.email).await;
    let browser = Browser::new(app);
    let op_browser = OpBrowser::new();
    let request = AuthRequest::new(&federation.client);
    federation.op.set_mode(Tamper::None, true);
    let login = browser.get(&request.path()).await;
    let authorize = continue_upstream(&browser, &login).await;
    let callback = op_browser
        .sign_in(&authorize, ALICE, &callback_prefix(app))
        .await;
    let failed = browser.get(&callback).await;
    assert_failure_page(&failed, 502, true);
    assert!(
        failed
            .body
            .contains("The sign-in provider is not responding")
    );
    assert!(failed.body.contains("Try again with Corp SSO"));
    // Nothing half-written: no link, and the MCP request is still pending.
    assert_eq!(
        app.store()
            .find_identity(&federation.op.issuer, ALICE.sub)
            .await
            .unwrap(),
        None
    );
    assert_eq!(failed.input("request"), login.input("request"));

    // Still down: the retry fails the same way, and can be retried again.
    let authorize = continue_upstream(&browser, &failed).await;
    let callback = op_browser
        .sign_in(&authorize, ALICE, &callback_prefix(app))
        .await;
    let failed_again = browser.get(&callback).await;
    assert_failure_page(&failed_again, 502, true);

    federation.op.set_mode(Tamper::None, false);
    let authorize = continue_upstream(&browser, &failed_again).await;
    let callback = op_browser
        .sign_in(&authorize, ALICE, &callback_prefix(app))
        .await;
    let callback = browser.get(&callback).await;
    let claims = consent_and_token(&federation, &browser, &request, &callback).await;
    assert_eq!(claims["sub"], user_id.as_str());
}

async fn state_is_single_use_and_bound_to_the_browser(backend: Backend) {
    let federation = federation(backend, |provider| provider.auto_provision = true).await;
    let app = &federation.app;
    let browser = Browser::new(app);
    let op_browser = OpBrowser::new();
    let request = AuthRequest::new(&federation.client);

    // An error from the provider: a page with "Try again", no redirect to
    // the MCP client.
    let login = browser.get(&request.path()).await;
    let authorize = continue_upstream(&browser, &login).await;
    let state = query(&authorize)["state"].clone();
    let denied = browser
        .get(&format!(
            "{}?{}",
            callback_prefix(app),
            form(&[("error", "access_denied"), ("state", &state)])
        ))
        .await;
    assert_failure_page(&denied, 403, true);
    assert!(denied.body.contains("The sign-in was not completed"));

    // Another browser's callback (no login CSRF cookie of its own) is
    // refused, and uses the state up.
    let authorize = continue_upstream(&browser, &denied).await;
    let callback = op_browser
        .sign_in(&authorize, DAVE, &callback_prefix(app))
        .await;
    let stranger = Browser::new(app);
    let foreign = stranger.get(&callback).await;
    assert_failure_page(&foreign, 400, false);
    assert!(foreign.body.contains("This sign-in has expired"));
    let replayed = browser.get(&callback).await;
    assert_failure_page(&replayed, 400, false);
    assert!(app.store().list_users().await.unwrap().is_empty());

    // A successful callback, replayed: refused, and no second session.
    let authorize = continue_upstream(&browser, &denied).await;
    let callback = op_browser
        .sign_in(&authorize, DAVE, &callback_prefix(app))
        .await;
    let first = browser.get(&callback).await;
    assert_eq!(first.status, 303, "{}", first.body);
    let replayed = browser.get(&callback).await;
    assert_failure_page(&replayed, 400, false);
    for bogus in ["", "?state=nonsense", "?state=a&state=b"] {
        let page = browser
            .get(&format!("{}{bogus}", callback_prefix(app)))
            .await;
        assert_failure_page(&page, 400, false);
    }
    // An unknown provider.
    let unknown = browser.get("/login/upstream/other/callback?state=x").await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    consent_and_token(&federation, &browser, &request, &first).await;
}

async fn password_sign_in_can_be_turned_off(backend: Backend) {
    // The provider is not running: Latchkey starts anyway, and discovery
    // fails only when someone tries to use it.
    let app = TestApp::builder(backend)
        .configure(|config| {
            config.password_login = false;
            let mut provider = UpstreamProvider::new(
                PROVIDER,
                "http://127.0.0.1:9",
                CLIENT_ID,
                SecretString::new(CLIENT_SECRET),
            );
            provider.display_name = "Corp SSO".to_owned();
            config.upstreams = vec![provider];
        })
        .start()
        .await;
    user(&app, "ada@example.org").await;
    let client = app.public_client().await;
    let browser = Browser::new(&app);
    let request = AuthRequest::new(&client);
    let login = browser.get(&request.path()).await;
    assert_eq!(login.status, 200);
    assert!(!login.is_login(), "no password form:\n{}", login.body);
    assert!(login.body.contains("Continue with Corp SSO"));
    let refused = browser
        .post(
            "/login",
            &[
                ("email", "ada@example.org"),
                ("password", crate::browser::PASSWORD),
                ("csrf", &login.input("csrf")),
                ("request", &login.input("request")),
            ],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused
            .set_cookies()
            .iter()
            .all(|cookie| !cookie.contains("session"))
    );

    // The provider is down: a page that offers to try again.
    let started = browser
        .post(
            &format!("/login/upstream/{PROVIDER}"),
            &[
                ("csrf", &login.input("csrf")),
                ("request", &login.input("request")),
            ],
        )
        .await;
    assert_failure_page(&started, 502, true);
    // A forged CSRF token is refused before anything else.
    let forged = browser
        .post(
            &format!("/login/upstream/{PROVIDER}"),
            &[("csrf", "forged"), ("request", &login.input("request"))],
        )
        .await;
    assert_eq!(forged.status, 403);
}

backend_tests!(
    links_by_subject_and_the_client_gets_a_latchkey_token,
    the_token_endpoint_down_midway_then_a_retry_succeeds,
    password_sign_in_can_be_turned_off,
);

/// The other scenarios run once, on SQLite: the store calls they make are
/// the ones the contract suite checks on every backend, and each test
/// starts a Node process.
mod sqlite_only {
    use super::*;

    macro_rules! sqlite {
        ($($name:ident),* $(,)?) => {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(Backend::Sqlite).await;
                }
            )*
        };
    }

    sqlite!(
        links_by_verified_email_when_enabled,
        verified_email_without_the_flag_is_refused,
        an_unverified_email_is_not_linked,
        auto_provisioning_creates_and_links_a_user,
        without_auto_provisioning_an_unknown_identity_is_refused,
        tampered_id_tokens_are_refused_and_a_retry_succeeds,
        state_is_single_use_and_bound_to_the_browser,
    );
}
