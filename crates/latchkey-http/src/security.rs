//! Browser security for the server's own pages: response headers, the
//! `Origin` policy of form posts, and cookies.
//!
//! Headers on every HTML page ([`html_response`]):
//! - `Content-Security-Policy: default-src 'none'; style-src 'self';
//!   img-src 'self' https: data:; form-action 'self' …; frame-ancestors
//!   'none'; base-uri 'none'`: no script at all, no framing (clickjacking
//!   of the consent button), forms only to ourselves. Chromium applies
//!   `form-action` to every redirect that follows a form submission too,
//!   and the login and consent forms end in a redirect to the client's
//!   redirect URI, so those pages add exactly that origin (or private-use
//!   scheme) to `form-action`;
//! - `X-Frame-Options: DENY` for browsers without `frame-ancestors`,
//!   `Referrer-Policy: no-referrer` (the authorization URL and the code
//!   must not leak to the client's page or to a logo host),
//!   `X-Content-Type-Options: nosniff`, `Cache-Control: no-store`.
//!
//! Every response of the router, JSON included, gets `nosniff`
//! ([`nosniff`]).
//!
//! `Origin` policy of state-changing posts ([`check_origin`]), always in
//! addition to the CSRF token:
//! - an `Origin` other than `null` must equal the issuer's origin;
//! - `Origin: null` is what browsers send for a form post from a page with
//!   `Referrer-Policy: no-referrer` (Fetch §3.1 "serializing a request
//!   origin"): then `Sec-Fetch-Site` must be `same-origin`. A `null`
//!   origin without fetch metadata (an old browser, a sandboxed frame) is
//!   refused;
//! - with neither header (a non-browser client) the CSRF token alone
//!   decides; every browser that runs the pages sends at least one of them;
//! - `Sec-Fetch-Site`, when present, must be `same-origin` whatever
//!   `Origin` says.
//!
//! Cookies ([`CookieNames`]): `HttpOnly; SameSite=Lax; Path=/`, no
//! `Domain`; with an https issuer also `Secure` and the `__Host-` prefix
//! (which browsers only accept with exactly those attributes). Over
//! plain-http loopback development neither is possible: browsers drop
//! `Secure` cookies set over http.

use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The `Content-Security-Policy` of a page whose forms may end at
/// `form_targets` besides this server.
pub fn content_security_policy(form_targets: &[String]) -> String {
    let mut form_action = String::from("'self'");
    for target in form_targets {
        // Only plain origins and schemes: anything with a quote, a space or
        // a semicolon would change the policy's meaning.
        if !target.is_empty()
            && target
                .bytes()
                .all(|byte| byte.is_ascii_graphic() && !matches!(byte, b';' | b',' | b'\''))
        {
            form_action.push(' ');
            form_action.push_str(target);
        }
    }
    format!(
        "default-src 'none'; style-src 'self'; img-src 'self' https: data:; \
         form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
    )
}

/// Adds the page headers (module docs) to `headers`.
pub fn page_headers(headers: &mut HeaderMap, form_targets: &[String]) {
    if let Ok(policy) = HeaderValue::from_str(&content_security_policy(form_targets)) {
        headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// An HTML page with every page header.
pub fn html_response(status: StatusCode, body: String, form_targets: &[String]) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    page_headers(headers, form_targets);
    response
}

/// A `303 See Other` to `location` (OAuth 2.1 §7.5.2: never 307, which
/// would repeat a POST with the user's credentials), uncached and without
/// a referrer.
pub fn see_other(location: &str) -> Response {
    let Ok(value) = HeaderValue::from_str(location) else {
        // Locations are built from validated URLs; one that is not a valid
        // header value is a bug, reported rather than sent.
        tracing::error!("a redirect location is not a valid header value");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, value);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// Adds `X-Content-Type-Options: nosniff` to every response.
pub async fn nosniff(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    response
        .headers_mut()
        .entry(header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
    response
}

/// Why a post's origin was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginRejection {
    /// `Origin` names another site.
    CrossOrigin,
    /// `Sec-Fetch-Site` says the request came from another site.
    CrossSite,
    /// `Origin: null` without `Sec-Fetch-Site`.
    OpaqueOrigin,
}

/// The `Sec-Fetch-Site` request header (not in `http`'s constants).
const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");

/// Applies the `Origin` policy (module docs) to a state-changing post.
pub fn check_origin(headers: &HeaderMap, issuer_origin: &str) -> Result<(), OriginRejection> {
    let origin = headers
        .get(header::ORIGIN)
        .map(|value| value.to_str().unwrap_or("\u{0}"));
    let fetch_site = headers
        .get(SEC_FETCH_SITE)
        .map(|value| value.to_str().unwrap_or_default());
    if let Some(site) = fetch_site
        && !site.eq_ignore_ascii_case("same-origin")
    {
        return Err(OriginRejection::CrossSite);
    }
    match origin {
        Some("null") if fetch_site.is_none() => Err(OriginRejection::OpaqueOrigin),
        Some("null") | None => Ok(()),
        Some(origin) if origin.eq_ignore_ascii_case(issuer_origin) => Ok(()),
        Some(_) => Err(OriginRejection::CrossOrigin),
    }
}

/// The names of the cookies for one issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieNames {
    /// The session cookie.
    pub session: &'static str,
    /// The login form's double-submit cookie.
    pub login_csrf: &'static str,
    secure: bool,
}

impl CookieNames {
    /// The names for an https issuer (`__Host-`, `Secure`) or not.
    pub fn new(https: bool) -> CookieNames {
        if https {
            CookieNames {
                session: "__Host-latchkey-session",
                login_csrf: "__Host-latchkey-csrf",
                secure: true,
            }
        } else {
            CookieNames {
                session: "latchkey-session",
                login_csrf: "latchkey-csrf",
                secure: false,
            }
        }
    }

    /// A `Set-Cookie` value for `name=value`, living `max_age` (a zero
    /// `max_age` deletes the cookie).
    pub fn set_cookie(&self, name: &str, value: &str, max_age: Duration) -> Option<HeaderValue> {
        let secure = if self.secure { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{name}={value}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
            max_age.as_secs()
        ))
        .ok()
    }
}

/// The value of the cookie `name` in the request's `Cookie` headers. A
/// name sent twice (a cookie planted for a parent domain or path next to
/// ours) yields nothing rather than a guess.
pub fn read_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    let mut found: Option<String> = None;
    for value in headers.get_all(header::COOKIE) {
        let Ok(text) = value.to_str() else {
            continue;
        };
        for pair in text.split(';') {
            let Some((key, value)) = pair.trim().split_once('=') else {
                continue;
            };
            if key.trim() == name {
                if found.is_some() {
                    return None;
                }
                found = Some(value.trim().trim_matches('"').to_owned());
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    const ISSUER_ORIGIN: &str = "https://auth.example.com";

    /// Request headers and the expected outcome.
    type Case = (
        &'static [(&'static str, &'static str)],
        Result<(), OriginRejection>,
    );

    #[test]
    fn the_origin_policy_table() {
        let cases: [Case; 9] = [
            (&[], Ok(())),
            (&[("origin", ISSUER_ORIGIN)], Ok(())),
            (
                &[("origin", ISSUER_ORIGIN), ("sec-fetch-site", "same-origin")],
                Ok(()),
            ),
            (
                &[("origin", "null"), ("sec-fetch-site", "same-origin")],
                Ok(()),
            ),
            (&[("sec-fetch-site", "same-origin")], Ok(())),
            (
                &[("origin", "https://evil.example")],
                Err(OriginRejection::CrossOrigin),
            ),
            (
                &[("origin", "null"), ("sec-fetch-site", "cross-site")],
                Err(OriginRejection::CrossSite),
            ),
            (
                &[("origin", ISSUER_ORIGIN), ("sec-fetch-site", "same-site")],
                Err(OriginRejection::CrossSite),
            ),
            (&[("origin", "null")], Err(OriginRejection::OpaqueOrigin)),
        ];
        for (pairs, expected) in cases {
            assert_eq!(
                check_origin(&headers(pairs), ISSUER_ORIGIN),
                expected,
                "{pairs:?}"
            );
        }
    }

    #[test]
    fn the_policy_allows_only_plain_form_targets() {
        let policy = content_security_policy(&[
            "http://127.0.0.1:4242".to_owned(),
            "com.example.app:".to_owned(),
            "https://x; script-src *".to_owned(),
            String::new(),
        ]);
        assert_eq!(
            policy,
            "default-src 'none'; style-src 'self'; img-src 'self' https: data:; \
             form-action 'self' http://127.0.0.1:4242 com.example.app:; \
             frame-ancestors 'none'; base-uri 'none'"
        );
    }

    #[test]
    fn cookies_follow_the_issuer_scheme() {
        let https = CookieNames::new(true);
        assert_eq!(
            https
                .set_cookie(https.session, "v", Duration::from_secs(60))
                .unwrap(),
            "__Host-latchkey-session=v; Path=/; Max-Age=60; HttpOnly; SameSite=Lax; Secure"
        );
        let http = CookieNames::new(false);
        assert_eq!(
            http.set_cookie(http.login_csrf, "", Duration::ZERO)
                .unwrap(),
            "latchkey-csrf=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"
        );
    }

    #[test]
    fn cookies_are_read_once_or_not_at_all() {
        let map = headers(&[("cookie", "a=1; latchkey-session=abc"), ("cookie", "b=2")]);
        assert_eq!(
            read_cookie(&map, "latchkey-session").as_deref(),
            Some("abc")
        );
        assert_eq!(read_cookie(&map, "b").as_deref(), Some("2"));
        assert_eq!(read_cookie(&map, "missing"), None);
        let twice = headers(&[("cookie", "latchkey-session=abc; latchkey-session=def")]);
        assert_eq!(read_cookie(&twice, "latchkey-session"), None);
    }
}
