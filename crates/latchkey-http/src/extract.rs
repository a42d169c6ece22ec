//! Request extractors that turn hostile input into OAuth errors, never into
//! a 500 or a panic.
//!
//! - [`OAuthForm`]: the body of `/token`, `/revoke` and `/introspect`. The
//!   `Content-Type` must be `application/x-www-form-urlencoded` (RFC 6749
//!   §3.2), optionally with `charset=utf-8`; anything else is
//!   `invalid_request` with status 400 (RFC 6749 §5.2 has no 415, and OAuth
//!   clients act on the JSON error, not on the status). The body is read
//!   under the configured limit (413 beyond it, announced or not) and
//!   parsed by `latchkey_protocol::params`, which refuses repeated
//!   parameters and bad encodings.
//! - [`JsonBody`]: the body of `/register`: `application/json` (RFC 7591
//!   §3.1), same limit; whether it is valid JSON is the service's call
//!   (`invalid_client_metadata`).
//! - the `Authorization` header, at most once and visible ASCII.
//! - [`client_address`]: the address rate limits apply to.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use http_body_util::BodyExt;
use latchkey_protocol::OAuthError;
use latchkey_protocol::params::{FormLimits, FormParams};

use crate::AppState;
use crate::error::ApiError;

/// A parsed form body and the request's `Authorization` header.
#[derive(Debug)]
pub struct OAuthForm {
    /// The parameters (values are secrets: never log them).
    pub params: FormParams,
    /// The `Authorization` header, if sent.
    pub authorization: Option<String>,
}

/// A JSON body, unparsed, and the request's `Authorization` header.
#[derive(Debug)]
pub struct JsonBody {
    /// The raw body.
    pub body: Vec<u8>,
    /// The `Authorization` header, if sent.
    pub authorization: Option<String>,
}

/// Whether the `Content-Type` is `expected`, with at most a UTF-8 charset
/// parameter (media types and parameter names are case-insensitive,
/// RFC 9110 §8.3.1).
pub(crate) fn content_type_is(headers: &HeaderMap, expected: &str) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let mut parts = value.split(';');
    let media_type = parts.next().unwrap_or_default().trim();
    if !media_type.eq_ignore_ascii_case(expected) {
        return false;
    }
    parts.all(|parameter| {
        let parameter = parameter.trim();
        if parameter.is_empty() {
            return true;
        }
        match parameter.split_once('=') {
            Some((name, value)) if name.trim().eq_ignore_ascii_case("charset") => {
                let charset = value.trim().trim_matches('"');
                charset.eq_ignore_ascii_case("utf-8") || charset.eq_ignore_ascii_case("utf8")
            }
            _ => false,
        }
    })
}

/// The `Authorization` header: `None` when absent; an error when repeated
/// or not visible ASCII.
pub fn authorization(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::oauth(OAuthError::invalid_request(
            "the Authorization header is repeated",
        )));
    }
    let text = first.to_str().map_err(|_| {
        ApiError::oauth(OAuthError::invalid_client(
            "the Authorization header is malformed",
        ))
    })?;
    Ok(Some(text.to_owned()))
}

/// How much of an oversized body is read and thrown away before the 413
/// is sent. Answering while the client is still writing makes it see a
/// broken pipe instead of the answer, so a body that is only somewhat too
/// large is drained first; a bigger one is cut off at once.
pub const DRAIN_LIMIT: usize = 1024 * 1024;

/// Reads the body under `limit` bytes: 413 beyond it, whether the client
/// announced the length or not (see [`DRAIN_LIMIT`]).
pub(crate) async fn read_limited(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    let drain_limit = u64::try_from(DRAIN_LIMIT.max(limit)).unwrap_or(u64::MAX);
    if announced.is_some_and(|length| length > drain_limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let mut body = body;
    let mut collected: Vec<u8> = Vec::new();
    let mut total: usize = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| {
            ApiError::oauth(OAuthError::invalid_request(
                "the request body could not be read",
            ))
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total = total.saturating_add(data.len());
        if total > DRAIN_LIMIT.max(limit) {
            break;
        }
        if total <= limit {
            collected.extend_from_slice(&data);
        }
    }
    if total > limit {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    Ok(collected)
}

impl FromRequest<AppState> for OAuthForm {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<OAuthForm, ApiError> {
        let (parts, body) = request.into_parts();
        if !content_type_is(&parts.headers, "application/x-www-form-urlencoded") {
            return Err(ApiError::oauth(OAuthError::invalid_request(
                "the request body must be application/x-www-form-urlencoded (RFC 6749 section 3.2)",
            )));
        }
        let authorization = authorization(&parts.headers)?;
        let limit = state.config.body_limit;
        let bytes = read_limited(body, &parts.headers, limit).await?;
        let limits = FormLimits {
            max_total_len: limit,
            ..FormLimits::default()
        };
        let params = FormParams::parse_with_limits(&bytes, &limits)
            .map_err(|error| ApiError::oauth(OAuthError::from(error)))?;
        Ok(OAuthForm {
            params,
            authorization,
        })
    }
}

impl FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<JsonBody, ApiError> {
        let (parts, body) = request.into_parts();
        if !content_type_is(&parts.headers, "application/json") {
            return Err(ApiError::oauth(OAuthError::invalid_request(
                "the registration request must be application/json (RFC 7591 section 3.1)",
            )));
        }
        let authorization = authorization(&parts.headers)?;
        let body = read_limited(body, &parts.headers, state.config.body_limit).await?;
        Ok(JsonBody {
            body,
            authorization,
        })
    }
}

/// The address rate limits apply to, as an extractor (see
/// [`client_address`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<ClientAddress, std::convert::Infallible> {
        Ok(ClientAddress(client_address(
            &parts.headers,
            parts.extensions.get::<ConnectInfo<SocketAddr>>(),
            state.config.trust_forwarded_for,
        )))
    }
}

/// The address of the client a request came from: the socket peer, or,
/// when `trust_forwarded_for` is set, the last `X-Forwarded-For` entry
/// (the address the trusted proxy in front of us saw; earlier entries are
/// whatever the client claimed and can be forged).
pub fn client_address(
    headers: &HeaderMap,
    peer: Option<&ConnectInfo<SocketAddr>>,
    trust_forwarded_for: bool,
) -> IpAddr {
    let socket = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip());
    if !trust_forwarded_for {
        return socket;
    }
    // Only the last entry: if the proxy appended something that is not an
    // address, an earlier (client-supplied) entry must not be used instead.
    headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|value| value.to_str().unwrap_or_default())
        .flat_map(|value| value.split(','))
        .next_back()
        .and_then(|entry| entry.trim().parse::<IpAddr>().ok())
        .unwrap_or(socket)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn content_types_allow_a_utf8_charset_only() {
        let form = "application/x-www-form-urlencoded";
        for (value, accepted) in [
            ("application/x-www-form-urlencoded", true),
            ("Application/X-WWW-Form-Urlencoded", true),
            ("application/x-www-form-urlencoded; charset=UTF-8", true),
            ("application/x-www-form-urlencoded;charset=\"utf-8\"", true),
            (
                "application/x-www-form-urlencoded; charset=iso-8859-1",
                false,
            ),
            ("application/x-www-form-urlencoded; boundary=x", false),
            ("application/json", false),
            ("multipart/form-data", false),
            ("text/plain", false),
        ] {
            assert_eq!(
                content_type_is(&headers(&[("content-type", value)]), form),
                accepted,
                "{value}"
            );
        }
        assert!(!content_type_is(&HeaderMap::new(), form));
    }

    #[test]
    fn the_authorization_header_may_appear_once() {
        assert_eq!(authorization(&HeaderMap::new()).unwrap(), None);
        assert_eq!(
            authorization(&headers(&[("authorization", "Basic x")])).unwrap(),
            Some("Basic x".to_owned())
        );
        assert!(
            authorization(&headers(&[("authorization", "a"), ("authorization", "b")])).is_err()
        );
        let mut non_ascii = HeaderMap::new();
        non_ascii.insert(
            header::AUTHORIZATION,
            HeaderValue::from_bytes(b"Basic \xff").unwrap(),
        );
        assert!(authorization(&non_ascii).is_err());
    }

    #[test]
    fn forwarded_addresses_are_used_only_when_trusted() {
        let peer = ConnectInfo(SocketAddr::from(([10, 0, 0, 1], 4000)));
        let forwarded = headers(&[
            ("x-forwarded-for", "203.0.113.9, 198.51.100.7"),
            ("x-forwarded-for", "192.0.2.44"),
        ]);
        assert_eq!(
            client_address(&forwarded, Some(&peer), false),
            "10.0.0.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_address(&forwarded, Some(&peer), true),
            "192.0.2.44".parse::<IpAddr>().unwrap()
        );
        let garbage = headers(&[("x-forwarded-for", "192.0.2.1, unknown")]);
        assert_eq!(
            client_address(&garbage, Some(&peer), true),
            "10.0.0.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_address(&HeaderMap::new(), None, false),
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        );
    }
}
