//! A small stand-in for a browser over real HTTP: a cookie jar, no
//! automatic redirects (each 303 is asserted), and form posts that carry
//! what Chromium sends from a `Referrer-Policy: no-referrer` page
//! (`Origin: null`, `Sec-Fetch-Site: same-origin`). The real browser runs
//! the same flows in `e2e/tests/authorize.test.mjs`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use latchkey_protocol::pkce::{CodeChallenge, CodeVerifier};
use latchkey_protocol::secret::SecretString;
use latchkey_service::accounts::UserAdmin;
use reqwest::header::{CONTENT_TYPE, COOKIE, HeaderMap, LOCATION, SET_COOKIE};

use crate::support::{Client, MCP, REDIRECT_URI, TestApp, form};

/// The password of every user made by [`user`].
pub(crate) const PASSWORD: &str = "correct horse battery";

/// Creates a user with [`PASSWORD`]; returns the user id.
pub(crate) async fn user(app: &TestApp, email: &str) -> String {
    UserAdmin::new(app.store(), app.clock.clone())
        .add(email, &SecretString::new(PASSWORD))
        .await
        .unwrap()
        .user_id
}

/// A response as a browser sees it.
#[derive(Debug)]
pub(crate) struct Page {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

impl Page {
    /// A header as text.
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    }

    /// The `Location` of a redirect.
    pub(crate) fn location(&self) -> String {
        assert_eq!(self.status, 303, "expected a redirect: {}", self.body);
        self.header(LOCATION.as_str()).unwrap()
    }

    /// Every `Set-Cookie` header.
    pub(crate) fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .map(|value| value.to_str().unwrap().to_owned())
            .collect()
    }

    /// The value of the hidden input `name` (the templates write
    /// `name="X" value="Y"`).
    pub(crate) fn input(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no input {name} in:\n{}", self.body))
            + marker.len();
        let end = self.body[start..].find('"').unwrap() + start;
        self.body[start..end].to_owned()
    }

    /// Whether this is the sign-in page.
    pub(crate) fn is_login(&self) -> bool {
        self.body.contains("<form id=\"login\"")
    }

    /// Whether this is the consent page.
    pub(crate) fn is_consent(&self) -> bool {
        self.body.contains("<form id=\"consent\"")
    }

    /// Whether this is an error page.
    pub(crate) fn is_error(&self) -> bool {
        self.body
            .contains("<main class=\"card error\" id=\"error\">")
    }

    /// Asserts the headers every HTML page carries.
    pub(crate) fn assert_page_headers(&self) {
        assert_eq!(
            self.header("content-type").as_deref(),
            Some("text/html; charset=utf-8")
        );
        let policy = self.header("content-security-policy").unwrap();
        for directive in [
            "default-src 'none'",
            "style-src 'self'",
            "img-src 'self' https: data:",
            "form-action 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ] {
            assert!(policy.contains(directive), "{directive} missing: {policy}");
        }
        assert!(!policy.contains("script-src"), "{policy}");
        assert_eq!(self.header("x-frame-options").as_deref(), Some("DENY"));
        assert_eq!(
            self.header("referrer-policy").as_deref(),
            Some("no-referrer")
        );
        assert_eq!(
            self.header("x-content-type-options").as_deref(),
            Some("nosniff")
        );
        assert_eq!(self.header("cache-control").as_deref(), Some("no-store"));
        assert!(!self.body.contains("<script"), "pages carry no script");
    }
}

/// The query parameters of a URL.
pub(crate) fn query(url: &str) -> BTreeMap<String, String> {
    let query = url.split_once('?').map(|(_, query)| query).unwrap_or("");
    let mut pairs = BTreeMap::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |text: &str| {
            let text = text.replace('+', " ");
            let mut bytes = Vec::new();
            let raw = text.as_bytes();
            let mut index = 0;
            while index < raw.len() {
                if raw[index] == b'%' {
                    bytes.push(u8::from_str_radix(&text[index + 1..index + 3], 16).unwrap());
                    index += 3;
                } else {
                    bytes.push(raw[index]);
                    index += 1;
                }
            }
            String::from_utf8(bytes).unwrap()
        };
        assert!(
            pairs.insert(decode(name), decode(value)).is_none(),
            "{name} repeated in {url}"
        );
    }
    pairs
}

/// A browser with its own cookie jar.
pub(crate) struct Browser<'a> {
    app: &'a TestApp,
    http: reqwest::Client,
    cookies: Mutex<BTreeMap<String, String>>,
}

impl<'a> Browser<'a> {
    pub(crate) fn new(app: &'a TestApp) -> Browser<'a> {
        Browser {
            app,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: Mutex::new(BTreeMap::new()),
        }
    }

    /// The value of a cookie in the jar.
    pub(crate) fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.lock().unwrap().get(name).cloned()
    }

    /// Puts a cookie in the jar (or removes it, with `None`).
    pub(crate) fn set_cookie(&self, name: &str, value: Option<&str>) {
        let mut cookies = self.cookies.lock().unwrap();
        match value {
            Some(value) => cookies.insert(name.to_owned(), value.to_owned()),
            None => cookies.remove(name),
        };
    }

    fn cookie_header(&self) -> Option<String> {
        let cookies = self.cookies.lock().unwrap();
        (!cookies.is_empty()).then(|| {
            cookies
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Page {
        let request = match self.cookie_header() {
            Some(cookies) => request.header(COOKIE, cookies),
            None => request,
        };
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.unwrap();
        let page = Page {
            status,
            headers,
            body,
        };
        for set_cookie in page.set_cookies() {
            let pair = set_cookie.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            let deleted = set_cookie.contains("Max-Age=0");
            self.set_cookie(name, (!deleted).then_some(value));
        }
        page
    }

    /// `GET` of a path (or an absolute URL).
    pub(crate) async fn get(&self, path: &str) -> Page {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            self.app.url(path)
        };
        self.send(self.http.get(url)).await
    }

    /// A form post as Chromium sends it from one of our pages.
    pub(crate) async fn post(&self, path: &str, pairs: &[(&str, &str)]) -> Page {
        self.post_with(
            path,
            pairs,
            &[("origin", "null"), ("sec-fetch-site", "same-origin")],
        )
        .await
    }

    /// A form post with exactly these extra headers.
    pub(crate) async fn post_with(
        &self,
        path: &str,
        pairs: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Page {
        let mut request = self
            .http
            .post(self.app.url(path))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form(pairs));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request).await
    }

    /// Submits the sign-in form of `page`.
    pub(crate) async fn sign_in(&self, page: &Page, email: &str, password: &str) -> Page {
        assert!(page.is_login(), "not the sign-in page:\n{}", page.body);
        let csrf = page.input("csrf");
        let request = page.input("request");
        let return_to = page.input("return");
        self.post(
            "/login",
            &[
                ("email", email),
                ("password", password),
                ("csrf", &csrf),
                ("request", &request),
                ("return", &return_to),
            ],
        )
        .await
    }

    /// Submits the consent form of `page` with `decision`.
    pub(crate) async fn decide(&self, page: &Page, decision: &str) -> Page {
        assert!(page.is_consent(), "not the consent page:\n{}", page.body);
        let csrf = page.input("csrf");
        let request = page.input("request");
        self.post(
            "/consent",
            &[
                ("csrf", &csrf),
                ("request", &request),
                ("decision", decision),
            ],
        )
        .await
    }

    /// Follows a 303 to a path on the app.
    pub(crate) async fn follow(&self, page: &Page) -> Page {
        let location = page.location();
        assert!(
            location.starts_with('/'),
            "not a local redirect: {location}"
        );
        self.get(&location).await
    }

    /// `/authorize` with `request`, signs in, and returns the page after
    /// the sign-in redirect (consent, or a redirect to the client).
    pub(crate) async fn authorize_and_sign_in(&self, request: &AuthRequest, email: &str) -> Page {
        let login = self.get(&request.path()).await;
        assert_eq!(login.status, 200, "{}", login.body);
        let signed_in = self.sign_in(&login, email, PASSWORD).await;
        assert_eq!(signed_in.status, 303, "{}", signed_in.body);
        self.follow(&signed_in).await
    }
}

/// An authorization request under construction.
pub(crate) struct AuthRequest {
    pub(crate) verifier: CodeVerifier,
    pairs: Vec<(String, String)>,
}

impl AuthRequest {
    /// A valid request for `client`: S256, scope `read`, the MCP resource,
    /// a state, the registered loopback redirect.
    pub(crate) fn new(client: &Client) -> AuthRequest {
        let verifier = CodeVerifier::generate(&ring::rand::SystemRandom::new()).unwrap();
        let challenge = CodeChallenge::s256(&verifier).as_str().to_owned();
        let pairs = [
            ("response_type", "code"),
            ("client_id", client.client_id.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("scope", "read"),
            ("state", "xyz 123"),
            ("resource", MCP),
        ]
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
        AuthRequest { verifier, pairs }
    }

    pub(crate) fn set(mut self, name: &str, value: &str) -> AuthRequest {
        self.pairs.retain(|(existing, _)| existing != name);
        self.pairs.push((name.to_owned(), value.to_owned()));
        self
    }

    pub(crate) fn without(mut self, name: &str) -> AuthRequest {
        self.pairs.retain(|(existing, _)| existing != name);
        self
    }

    /// Adds a parameter a second time.
    pub(crate) fn repeat(mut self, name: &str, value: &str) -> AuthRequest {
        self.pairs.push((name.to_owned(), value.to_owned()));
        self
    }

    pub(crate) fn pairs(&self) -> Vec<(&str, &str)> {
        self.pairs
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect()
    }

    /// `/authorize?…`.
    pub(crate) fn path(&self) -> String {
        format!("/authorize?{}", form(&self.pairs()))
    }
}

/// Asserts a redirect to the registered redirect URI with an error, a
/// description, the state and the issuer.
pub(crate) fn assert_error_redirect(app: &TestApp, page: &Page, error: &str) {
    let location = page.location();
    assert!(location.starts_with(REDIRECT_URI), "{location}");
    let params = query(&location);
    assert_eq!(
        params.get("error").map(String::as_str),
        Some(error),
        "{location}"
    );
    assert!(params.contains_key("error_description"), "{location}");
    assert_eq!(params.get("state").map(String::as_str), Some("xyz 123"));
    assert_eq!(params.get("iss"), Some(&app.issuer));
    assert!(!params.contains_key("code"));
}

/// Asserts a success redirect and returns the code.
pub(crate) fn assert_code_redirect(app: &TestApp, page: &Page) -> String {
    let location = page.location();
    assert!(
        location.starts_with(&format!("{REDIRECT_URI}?code=lkc_")),
        "{location}"
    );
    let params = query(&location);
    assert_eq!(params.get("state").map(String::as_str), Some("xyz 123"));
    assert_eq!(params.get("iss"), Some(&app.issuer));
    params["code"].clone()
}

/// Exchanges `code` at `/token` for `client`; returns status and body.
pub(crate) async fn exchange(
    app: &TestApp,
    client: &Client,
    request: &AuthRequest,
    code: &str,
) -> (u16, serde_json::Value) {
    crate::support::json(
        app.token(
            client,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("code_verifier", request.verifier.as_str()),
                ("redirect_uri", REDIRECT_URI),
                ("resource", MCP),
            ],
        )
        .await,
    )
    .await
}

/// Registers a public client with a name and an https logo.
pub(crate) async fn named_client(app: &TestApp, name: &str) -> Client {
    let (status, body) = crate::support::json(
        app.register(serde_json::json!({
            "client_name": name,
            "logo_uri": "https://app.example/logo.png",
            "redirect_uris": [REDIRECT_URI],
            "application_type": "native",
            "grant_types": ["authorization_code", "refresh_token"],
        }))
        .await,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    Client {
        client_id: body["client_id"].as_str().unwrap().to_owned(),
        client_secret: None,
    }
}
