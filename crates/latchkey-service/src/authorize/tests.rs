//! Every branch of the authorization flow at the service level: the
//! validation order, the session and consent decisions, `prompt`, pending
//! requests, approval, denial and single use.

use std::time::Duration;

use latchkey_protocol::ErrorCode;
use latchkey_protocol::params::FormParams;
use latchkey_protocol::pkce::{CodeChallenge, CodeVerifier};

use super::*;
use crate::sessions::Session;
use crate::testing::{FILES, Fixture, MCP, TestClient, token_request, url_encode};

const ISSUER: &str = "https://auth.example.com";

struct Request {
    verifier: CodeVerifier,
    pairs: Vec<(String, String)>,
}

impl Request {
    /// A valid request for `client`: S256 PKCE, `read`, the MCP resource,
    /// a state, and the client's loopback redirect on port 4242.
    fn new(client: &TestClient) -> Request {
        let verifier = CodeVerifier::generate(&ring::rand::SystemRandom::new()).unwrap();
        let challenge = CodeChallenge::s256(&verifier).as_str().to_owned();
        let pairs = [
            ("response_type", "code"),
            ("client_id", client.client_id.as_str()),
            ("redirect_uri", "http://127.0.0.1:4242/callback"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("scope", "read"),
            ("state", "st&te 1"),
            ("resource", MCP),
        ]
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
        Request { verifier, pairs }
    }

    fn set(mut self, name: &str, value: &str) -> Request {
        self.pairs.retain(|(existing, _)| existing != name);
        self.pairs.push((name.to_owned(), value.to_owned()));
        self
    }

    fn without(mut self, name: &str) -> Request {
        self.pairs.retain(|(existing, _)| existing != name);
        self
    }

    fn params(&self) -> FormParams {
        let pairs: Vec<(&str, &str)> = self
            .pairs
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        FormParams::parse(url_encode(&pairs).as_bytes()).unwrap()
    }
}

/// The query parameters of a redirect URL.
fn query(url: &str) -> Vec<(String, String)> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

fn param(url: &str, name: &str) -> Option<String> {
    query(url)
        .into_iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
}

/// Asserts an error redirect to the request's redirect URI with `error`,
/// a description, the state and the issuer.
fn assert_error_redirect(outcome: Result<Authorization, AuthorizeError>, error: &str) {
    let Err(AuthorizeError::Redirect(url)) = outcome else {
        panic!("expected an error redirect, got {outcome:?}");
    };
    assert!(url.starts_with("http://127.0.0.1:4242/callback?"), "{url}");
    assert_eq!(param(&url, "error").as_deref(), Some(error), "{url}");
    assert!(param(&url, "error_description").is_some(), "{url}");
    assert_eq!(param(&url, "state").as_deref(), Some("st&te 1"));
    assert_eq!(param(&url, "iss").as_deref(), Some(ISSUER));
}

async fn session(fixture: &Fixture, user: &str) -> Session {
    fixture
        .service
        .create_session(user, fixture.clock_now())
        .await
        .unwrap()
        .session
}

#[tokio::test]
async fn the_client_and_redirect_uri_are_checked_first_and_never_redirected() {
    let fixture = Fixture::new().await;
    let client = fixture.public_client().await;
    let service = &fixture.service;

    let unknown = Request::new(&client).set("client_id", "no-such-client");
    assert!(matches!(
        service.begin_authorization(&unknown.params()).await,
        Err(AuthorizeError::Page(PageReason::UnknownClient))
    ));
    let no_client = Request::new(&client).without("client_id");
    assert!(matches!(
        service.begin_authorization(&no_client.params()).await,
        Err(AuthorizeError::Page(PageReason::InvalidRequest(_)))
    ));
    // Even with everything else wrong too, a bad redirect URI is a page.
    for redirect in [
        "https://evil.example/callback",
        "http://127.0.0.1:4242/callback/",
        "http://127.0.0.1:4242/callback?x=1",
        "http://localhost.evil.example/callback",
    ] {
        let bad = Request::new(&client)
            .set("redirect_uri", redirect)
            .set("response_type", "token")
            .without("code_challenge");
        let outcome = service.begin_authorization(&bad.params()).await;
        assert!(
            matches!(
                outcome,
                Err(AuthorizeError::Page(PageReason::InvalidRedirectUri(_)))
            ),
            "{redirect}: {outcome:?}"
        );
    }
    // Loopback: any port.
    let other_port = Request::new(&client).set("redirect_uri", "http://127.0.0.1:59999/callback");
    let authorization = service
        .begin_authorization(&other_port.params())
        .await
        .unwrap();
    assert_eq!(
        authorization.redirect_uri(),
        "http://127.0.0.1:59999/callback"
    );
    assert!(authorization.redirect_is_loopback());
    assert_eq!(authorization.redirect_host().as_deref(), Some("127.0.0.1"));
    assert_eq!(authorization.redirect_origin(), "http://127.0.0.1:59999");
}

#[tokio::test]
async fn later_errors_go_back_to_the_client_with_state_and_iss() {
    let fixture = Fixture::new().await;
    let client = fixture.public_client().await;
    let service = &fixture.service;
    let cases = [
        (
            Request::new(&client).without("code_challenge"),
            "invalid_request",
        ),
        (
            Request::new(&client).without("code_challenge_method"),
            "invalid_request",
        ),
        (
            Request::new(&client).set("code_challenge_method", "plain"),
            "invalid_request",
        ),
        (
            Request::new(&client).set("response_type", "token"),
            "unsupported_response_type",
        ),
        (
            Request::new(&client).without("response_type"),
            "invalid_request",
        ),
        (Request::new(&client).without("resource"), "invalid_target"),
        (
            Request::new(&client).set("resource", "https://mcp.example.com/other"),
            "invalid_target",
        ),
        (
            Request::new(&client).set("scope", "read admin"),
            "invalid_scope",
        ),
        (Request::new(&client).set("scope", "files"), "invalid_scope"),
        (
            Request::new(&client).set("prompt", "none login"),
            "invalid_request",
        ),
    ];
    for (request, error) in cases {
        assert_error_redirect(service.begin_authorization(&request.params()).await, error);
    }
    // Scopes are narrowed to what the resource allows: none requested
    // means all of them, without offline_access.
    let all = Request::new(&client)
        .without("scope")
        .set("resource", FILES);
    let authorization = service.begin_authorization(&all.params()).await.unwrap();
    assert_eq!(authorization.scopes().to_string(), "files");
    assert_eq!(authorization.resource().uri.as_str(), FILES);
}

#[tokio::test]
async fn without_a_session_the_user_signs_in_then_consents_then_gets_a_code() {
    let fixture = Fixture::new().await;
    let client = fixture.public_client().await;
    let user = fixture.user().await;
    let service = &fixture.service;
    let request = Request::new(&client).set("scope", "read offline_access");
    let authorization = service
        .begin_authorization(&request.params())
        .await
        .unwrap();
    assert_eq!(
        service
            .authorization_step(&authorization, None)
            .await
            .unwrap(),
        Step::Login
    );
    let handle = service
        .save_pending_authorization(&authorization)
        .await
        .unwrap();

    // After signing in, the stored request resumes at the consent page.
    let session = session(&fixture, &user).await;
    let resumed = service.resume_authorization(&handle).await.unwrap();
    assert_eq!(resumed.handle(), Some(handle.as_str()));
    assert_eq!(
        service
            .authorization_step(&resumed, Some(&session))
            .await
            .unwrap(),
        Step::Consent
    );
    let url = service
        .approve_authorization(&handle, &session)
        .await
        .unwrap();
    assert!(
        url.starts_with("http://127.0.0.1:4242/callback?code=lkc_"),
        "{url}"
    );
    assert_eq!(param(&url, "state").as_deref(), Some("st&te 1"));
    assert_eq!(param(&url, "iss").as_deref(), Some(ISSUER));

    // The code exchanges for tokens bound to the resource.
    let code = param(&url, "code").unwrap();
    let tokens = service
        .token(
            &client.credentials(),
            token_request(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("code_verifier", request.verifier.as_str()),
                ("redirect_uri", "http://127.0.0.1:4242/callback"),
                ("resource", MCP),
            ]),
        )
        .await
        .unwrap();
    assert_eq!(tokens.scope.as_deref(), Some("read offline_access"));
    assert!(tokens.refresh_token.is_some());

    // A decision is single use.
    assert!(matches!(
        service.approve_authorization(&handle, &session).await,
        Err(AuthorizeError::Page(PageReason::Expired))
    ));
    assert!(matches!(
        service.resume_authorization(&handle).await,
        Err(AuthorizeError::Page(PageReason::Expired))
    ));

    // The consent is remembered: the next request skips the page.
    let again = Request::new(&client).set("scope", "read");
    let authorization = service.begin_authorization(&again.params()).await.unwrap();
    let Step::Redirect(url) = service
        .authorization_step(&authorization, Some(&session))
        .await
        .unwrap()
    else {
        panic!("remembered consent must skip the page");
    };
    assert!(param(&url, "code").unwrap().starts_with("lkc_"));
    // More scopes ask again; so does prompt=consent.
    let more = Request::new(&client).set("scope", "read write");
    let authorization = service.begin_authorization(&more.params()).await.unwrap();
    assert_eq!(
        service
            .authorization_step(&authorization, Some(&session))
            .await
            .unwrap(),
        Step::Consent
    );
    let forced = Request::new(&client).set("prompt", "consent");
    let authorization = service.begin_authorization(&forced.params()).await.unwrap();
    assert_eq!(
        service
            .authorization_step(&authorization, Some(&session))
            .await
            .unwrap(),
        Step::Consent
    );
    // Thirty days later it expires.
    fixture.clock.advance(Duration::from_secs(30 * 24 * 3600));
    let later_session = super::tests::session(&fixture, &user).await;
    let authorization = service.begin_authorization(&again.params()).await.unwrap();
    assert_eq!(
        service
            .authorization_step(&authorization, Some(&later_session))
            .await
            .unwrap(),
        Step::Consent
    );
}

#[tokio::test]
async fn denial_sends_access_denied_once() {
    let fixture = Fixture::new().await;
    let client = fixture.public_client().await;
    let service = &fixture.service;
    let authorization = service
        .begin_authorization(&Request::new(&client).params())
        .await
        .unwrap();
    let handle = service
        .save_pending_authorization(&authorization)
        .await
        .unwrap();
    let url = service.deny_authorization(&handle).await.unwrap();
    assert!(
        url.starts_with("http://127.0.0.1:4242/callback?error=access_denied&"),
        "{url}"
    );
    assert_eq!(param(&url, "state").as_deref(), Some("st&te 1"));
    assert_eq!(param(&url, "iss").as_deref(), Some(ISSUER));
    assert!(matches!(
        service.deny_authorization(&handle).await,
        Err(AuthorizeError::Page(PageReason::Expired))
    ));
    assert!(matches!(
        service.deny_authorization("made-up").await,
        Err(AuthorizeError::Page(PageReason::Expired))
    ));
}

#[tokio::test]
async fn prompt_none_never_shows_a_page() {
    let fixture = Fixture::new().await;
    let client = fixture.public_client().await;
    let user = fixture.user().await;
    let service = &fixture.service;
    let request = Request::new(&client).set("prompt", "none");
    let authorization = service
        .begin_authorization(&request.params())
        .await
        .unwrap();

    let Step::Redirect(url) = service
        .authorization_step(&authorization, None)
        .await
        .unwrap()
    else {
        panic!("prompt=none must redirect");
    };
    assert_eq!(param(&url, "error").as_deref(), Some("login_required"));
    assert_eq!(param(&url, "iss").as_deref(), Some(ISSUER));

    let session = session(&fixture, &user).await;
    let Step::Redirect(url) = service
        .authorization_step(&authorization, Some(&session))
        .await
        .unwrap()
    else {
        panic!("prompt=none must redirect");
    };
    assert_eq!(param(&url, "error").as_deref(), Some("consent_required"));
    assert_eq!(param(&url, "state").as_deref(), Some("st&te 1"));

    service
        .remember_consent(
            &user,
            &client.client_id,
            MCP,
            authorization.scopes(),
            fixture.clock_now(),
        )
        .await
        .unwrap();
    let Step::Redirect(url) = service
        .authorization_step(&authorization, Some(&session))
        .await
        .unwrap()
    else {
        panic!("prompt=none must redirect");
    };
    assert!(param(&url, "code").unwrap().starts_with("lkc_"), "{url}");
}

#[tokio::test]
async fn prompt_login_needs_a_sign_in_after_the_request() {
    let fixture = Fixture::new().await;
    let client = fixture.public_client().await;
    let user = fixture.user().await;
    let service = &fixture.service;
    let old_session = session(&fixture, &user).await;
    service
        .remember_consent(
            &user,
            &client.client_id,
            MCP,
            &ScopeSet::parse("read").unwrap(),
            fixture.clock_now(),
        )
        .await
        .unwrap();
    fixture.clock.advance(Duration::from_secs(5));

    let request = Request::new(&client).set("prompt", "login");
    let authorization = service
        .begin_authorization(&request.params())
        .await
        .unwrap();
    assert_eq!(
        service
            .authorization_step(&authorization, Some(&old_session))
            .await
            .unwrap(),
        Step::Login,
        "an existing session is not enough"
    );
    let handle = service
        .save_pending_authorization(&authorization)
        .await
        .unwrap();
    let resumed = service.resume_authorization(&handle).await.unwrap();
    assert_eq!(
        service
            .authorization_step(&resumed, Some(&old_session))
            .await
            .unwrap(),
        Step::Login,
        "a session from before the request is not enough"
    );
    assert!(matches!(
        service.approve_authorization(&handle, &old_session).await,
        Err(AuthorizeError::Page(PageReason::Expired))
    ));

    let request = Request::new(&client).set("prompt", "login");
    let authorization = service
        .begin_authorization(&request.params())
        .await
        .unwrap();
    let handle = service
        .save_pending_authorization(&authorization)
        .await
        .unwrap();
    let fresh = session(&fixture, &user).await;
    let resumed = service.resume_authorization(&handle).await.unwrap();
    let Step::Redirect(url) = service
        .authorization_step(&resumed, Some(&fresh))
        .await
        .unwrap()
    else {
        panic!("a fresh sign-in with remembered consent gets a code");
    };
    assert!(param(&url, "code").is_some());
    // Issuing from a resumed request used it up.
    assert!(matches!(
        service.resume_authorization(&handle).await,
        Err(AuthorizeError::Page(PageReason::Expired))
    ));
}

#[tokio::test]
async fn pending_requests_expire_and_follow_client_changes() {
    let fixture = Fixture::new().await;
    let client = fixture.public_client().await;
    let user = fixture.user().await;
    let service = &fixture.service;
    let authorization = service
        .begin_authorization(&Request::new(&client).params())
        .await
        .unwrap();
    let handle = service
        .save_pending_authorization(&authorization)
        .await
        .unwrap();
    fixture.clock.advance(PENDING_AUTHORIZATION_TTL);
    assert!(matches!(
        service.resume_authorization(&handle).await,
        Err(AuthorizeError::Page(PageReason::Expired))
    ));

    let handle = service
        .save_pending_authorization(&authorization)
        .await
        .unwrap();
    fixture
        .store
        .delete_client(&client.client_id)
        .await
        .unwrap();
    service.forget_client(&client.client_id);
    let session = session(&fixture, &user).await;
    assert!(matches!(
        service.approve_authorization(&handle, &session).await,
        Err(AuthorizeError::Page(PageReason::UnknownClient))
    ));
}

#[tokio::test]
async fn a_disabled_user_gets_access_denied_instead_of_a_code() {
    let fixture = Fixture::new().await;
    let client = fixture.public_client().await;
    let user = fixture.user().await;
    let service = &fixture.service;
    let session = session(&fixture, &user).await;
    let authorization = service
        .begin_authorization(&Request::new(&client).params())
        .await
        .unwrap();
    let handle = service
        .save_pending_authorization(&authorization)
        .await
        .unwrap();
    fixture.store.set_user_disabled(&user, true).await.unwrap();
    let Err(AuthorizeError::Redirect(url)) = service.approve_authorization(&handle, &session).await
    else {
        panic!("expected an error redirect");
    };
    assert_eq!(
        param(&url, "error").as_deref(),
        Some(ErrorCode::AccessDenied.as_str())
    );
}
