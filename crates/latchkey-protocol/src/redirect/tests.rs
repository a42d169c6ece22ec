//! Table-driven tests for redirect URI registration and matching.

use super::*;

use ApplicationType::{Native, Web};

/// Expected outcome of registering a URI.
enum Registration {
    Accepted,
    Refused(RedirectUriError),
}

use Registration::{Accepted, Refused};

fn registration_table() -> Vec<(&'static str, ApplicationType, Registration)> {
    vec![
        // https is fine for both application types.
        ("https://app.example/callback", Web, Accepted),
        ("https://app.example/callback", Native, Accepted),
        ("https://app.example:8443/cb?tenant=1", Web, Accepted),
        ("https://App.Example/cb", Web, Accepted),
        ("https://192.0.2.1/cb", Web, Accepted),
        ("https://localhost:3000/cb", Web, Accepted),
        // Loopback http, for native and (for MCP SDK interop) web clients.
        ("http://127.0.0.1/callback", Native, Accepted),
        ("http://127.0.0.1:8080/callback", Native, Accepted),
        ("http://[::1]:8080/callback", Native, Accepted),
        ("http://localhost:6274/oauth/callback", Native, Accepted),
        ("http://localhost:6274/oauth/callback", Web, Accepted),
        ("http://127.0.0.1:33418", Web, Accepted),
        // Private-use schemes, native only.
        (
            "com.example.app:/oauth2redirect/example-provider",
            Native,
            Accepted,
        ),
        ("com.example.app://callback", Native, Accepted),
        (
            "com.example.app:/cb",
            Web,
            Refused(RedirectUriError::PrivateUseSchemeRequiresNative),
        ),
        (
            "myapp://callback",
            Native,
            Refused(RedirectUriError::UnsupportedScheme("myapp".to_owned())),
        ),
        // http for anything but loopback.
        (
            "http://app.example/cb",
            Web,
            Refused(RedirectUriError::HttpRequiresLoopback),
        ),
        (
            "http://app.example/cb",
            Native,
            Refused(RedirectUriError::HttpRequiresLoopback),
        ),
        (
            "http://127.0.0.2/cb",
            Native,
            Refused(RedirectUriError::HttpRequiresLoopback),
        ),
        (
            "http://localhost.evil.example/cb",
            Native,
            Refused(RedirectUriError::HttpRequiresLoopback),
        ),
        (
            "http://127.1/cb",
            Native,
            Refused(RedirectUriError::NonCanonicalHost),
        ),
        // Shapes that are never allowed.
        ("", Web, Refused(RedirectUriError::Empty)),
        ("/callback", Web, Refused(RedirectUriError::NotAbsolute)),
        (
            "app.example/cb",
            Web,
            Refused(RedirectUriError::NotAbsolute),
        ),
        (
            "https://app.example/cb#frag",
            Web,
            Refused(RedirectUriError::Fragment),
        ),
        (
            "https://app.example/cb#",
            Web,
            Refused(RedirectUriError::Fragment),
        ),
        (
            "https://user:pw@app.example/cb",
            Web,
            Refused(RedirectUriError::Userinfo),
        ),
        (
            "https://app.example@evil.example/cb",
            Web,
            Refused(RedirectUriError::Userinfo),
        ),
        (
            "http://localhost@evil.example/cb",
            Native,
            Refused(RedirectUriError::Userinfo),
        ),
        (
            "https://*.app.example/cb",
            Web,
            Refused(RedirectUriError::Wildcard),
        ),
        ("https://*/cb", Web, Refused(RedirectUriError::Wildcard)),
        (
            "https://app.example\\@evil.example/cb",
            Web,
            Refused(RedirectUriError::InvalidCharacter),
        ),
        (
            "https://app.example/c b",
            Web,
            Refused(RedirectUriError::InvalidCharacter),
        ),
        (
            "https://app.example/cb%zz",
            Web,
            Refused(RedirectUriError::InvalidCharacter),
        ),
        (
            "https://bücher.example/cb",
            Web,
            Refused(RedirectUriError::InvalidCharacter),
        ),
        (
            "https://ex%61mple.com/cb",
            Web,
            Refused(RedirectUriError::NonCanonicalHost),
        ),
        ("https:///cb", Web, Refused(RedirectUriError::MissingHost)),
        (
            "https:app.example/cb",
            Web,
            Refused(RedirectUriError::MissingHost),
        ),
        (
            "javascript:alert(1)",
            Native,
            Refused(RedirectUriError::ForbiddenScheme("javascript".to_owned())),
        ),
        (
            "JavaScript://%0aalert(1)",
            Native,
            Refused(RedirectUriError::ForbiddenScheme("javascript".to_owned())),
        ),
        (
            "data:text/html,hi",
            Native,
            Refused(RedirectUriError::ForbiddenScheme("data".to_owned())),
        ),
        (
            "file:///etc/passwd",
            Native,
            Refused(RedirectUriError::ForbiddenScheme("file".to_owned())),
        ),
        (
            "vbscript:msgbox",
            Native,
            Refused(RedirectUriError::ForbiddenScheme("vbscript".to_owned())),
        ),
        (
            "about:blank",
            Native,
            Refused(RedirectUriError::ForbiddenScheme("about".to_owned())),
        ),
        (
            "blob:https://app.example/uuid",
            Native,
            Refused(RedirectUriError::ForbiddenScheme("blob".to_owned())),
        ),
        (
            "ftp://app.example/cb",
            Native,
            Refused(RedirectUriError::ForbiddenScheme("ftp".to_owned())),
        ),
        (
            "ws://localhost/cb",
            Native,
            Refused(RedirectUriError::ForbiddenScheme("ws".to_owned())),
        ),
        (
            "wss://app.example/cb",
            Native,
            Refused(RedirectUriError::ForbiddenScheme("wss".to_owned())),
        ),
    ]
}

#[test]
fn registration_table_holds() {
    for (raw, application_type, expected) in registration_table() {
        let result = RedirectUri::parse_for_registration(raw, application_type);
        match (expected, result) {
            (Accepted, Ok(uri)) => assert_eq!(uri.as_str(), raw),
            (Refused(expected), Err(error)) => {
                assert_eq!(error, expected, "{raw} ({application_type})")
            }
            (Accepted, Err(error)) => panic!("{raw} ({application_type}) refused: {error}"),
            (Refused(expected), Ok(_)) => {
                panic!("{raw} ({application_type}) accepted, expected {expected}")
            }
        }
    }
}

#[test]
fn overlong_uris_are_refused() {
    let raw = format!("https://app.example/{}", "a".repeat(MAX_REDIRECT_URI_LEN));
    assert_eq!(
        RedirectUri::parse_for_registration(&raw, Web),
        Err(RedirectUriError::TooLong)
    );
}

#[test]
fn malformed_ports_are_refused() {
    for raw in ["http://127.0.0.1:99999/cb", "https://app.example:8x/cb"] {
        assert!(
            matches!(
                RedirectUri::parse_for_registration(raw, Native),
                Err(RedirectUriError::Malformed(_))
            ),
            "{raw}"
        );
    }
}

fn matching_table() -> Vec<(&'static str, &'static str, bool)> {
    vec![
        // Exact matching for https.
        ("https://app.example/cb", "https://app.example/cb", true),
        ("https://app.example/cb", "https://app.example/cb/", false),
        ("https://app.example/cb", "https://app.example/CB", false),
        ("https://app.example/cb", "https://APP.example/cb", false),
        (
            "https://app.example/cb",
            "https://app.example:443/cb",
            false,
        ),
        (
            "https://app.example/cb",
            "https://app.example/cb?x=1",
            false,
        ),
        ("https://app.example/cb", "https://app.example/cb#x", false),
        (
            "https://app.example/cb",
            "https://app.example/cb/../cb",
            false,
        ),
        ("https://app.example/cb", "https://app.example/c%62", false),
        (
            "https://app.example/cb",
            "https://app.example.evil/cb",
            false,
        ),
        (
            "https://app.example/cb?a=1",
            "https://app.example/cb?a=1",
            true,
        ),
        (
            "https://app.example/cb?a=1",
            "https://app.example/cb?a=2",
            false,
        ),
        (
            "https://localhost:3000/cb",
            "https://localhost:3001/cb",
            false,
        ),
        // Any port for http loopback, everything else identical.
        ("http://127.0.0.1/cb", "http://127.0.0.1/cb", true),
        ("http://127.0.0.1/cb", "http://127.0.0.1:51004/cb", true),
        ("http://127.0.0.1:8080/cb", "http://127.0.0.1:9090/cb", true),
        ("http://127.0.0.1:8080/cb", "http://127.0.0.1/cb", true),
        (
            "http://127.0.0.1:8080/cb",
            "http://127.0.0.1:65535/cb",
            true,
        ),
        (
            "http://127.0.0.1:8080/cb",
            "http://127.0.0.1:65536/cb",
            false,
        ),
        ("http://127.0.0.1:8080/cb", "http://127.0.0.1:0/cb", false),
        ("http://127.0.0.1:8080/cb", "http://127.0.0.1:/cb", false),
        (
            "http://127.0.0.1:8080/cb",
            "http://127.0.0.1:123456/cb",
            false,
        ),
        ("http://127.0.0.1:8080/cb", "http://127.0.0.1:80x/cb", false),
        (
            "http://127.0.0.1:8080/cb",
            "http://127.0.0.1:8080/cb2",
            false,
        ),
        (
            "http://127.0.0.1:8080/cb",
            "http://127.0.0.1:8080/cb?x",
            false,
        ),
        (
            "http://127.0.0.1:8080/cb",
            "https://127.0.0.1:8080/cb",
            false,
        ),
        (
            "http://127.0.0.1:8080/cb",
            "http://127.0.0.1.evil.example/cb",
            false,
        ),
        (
            "http://127.0.0.1:8080/cb",
            "http://127.0.0.1:8080@evil.example/cb",
            false,
        ),
        (
            "http://127.0.0.1:8080/cb",
            "http://127.0.0.1:80@evil.example/cb",
            false,
        ),
        ("http://127.0.0.1:8080/cb", "http://[::1]:8080/cb", false),
        (
            "http://127.0.0.1:8080/cb",
            "http://localhost:8080/cb",
            false,
        ),
        ("http://[::1]/cb", "http://[::1]:61000/cb", true),
        ("http://[::1]/cb", "http://[::1]61000/cb", false),
        ("http://127.0.0.1:33418", "http://127.0.0.1:40000", true),
        ("http://127.0.0.1:33418", "http://127.0.0.1:40000/", false),
        (
            "http://127.0.0.1/cb?a=b",
            "http://127.0.0.1:1234/cb?a=b",
            true,
        ),
        (
            "http://127.0.0.1/cb?a=b",
            "http://127.0.0.1:1234/cb?a=c",
            false,
        ),
        // localhost follows the loopback rule too.
        (
            "http://localhost/callback",
            "http://localhost:6274/callback",
            true,
        ),
        (
            "http://localhost:6274/callback",
            "http://localhost:1/callback",
            true,
        ),
        (
            "http://localhost/callback",
            "http://LOCALHOST:6274/callback",
            false,
        ),
        (
            "http://localhost/callback",
            "http://localhost.evil.example/callback",
            false,
        ),
        // Private-use schemes are exact.
        ("com.example.app:/cb", "com.example.app:/cb", true),
        ("com.example.app:/cb", "com.example.app:/cb/", false),
        ("com.example.app://cb", "com.example.app://cb:1", false),
    ]
}

#[test]
fn matching_table_holds() {
    for (registered, requested, expected) in matching_table() {
        let registered_uri = RedirectUri::parse_for_registration(registered, Native)
            .unwrap_or_else(|error| panic!("{registered}: {error}"));
        assert_eq!(
            registered_uri.matches(requested),
            expected,
            "{registered} vs {requested}"
        );
    }
}

#[test]
fn match_redirect_uri_finds_the_first_match() {
    let registered: Vec<RedirectUri> = ["https://a.example/one", "http://127.0.0.1/two"]
        .iter()
        .map(|raw| RedirectUri::parse_for_registration(raw, Native).unwrap())
        .collect();
    assert_eq!(
        match_redirect_uri(&registered, "http://127.0.0.1:5000/two").map(RedirectUri::as_str),
        Some("http://127.0.0.1/two")
    );
    assert_eq!(
        match_redirect_uri(&registered, "https://a.example/one").map(RedirectUri::as_str),
        Some("https://a.example/one")
    );
    assert_eq!(
        match_redirect_uri(&registered, "https://a.example/two"),
        None
    );
    assert_eq!(match_redirect_uri(&[], "https://a.example/one"), None);
}

#[test]
fn accessors_for_the_consent_page() {
    let https = RedirectUri::parse_for_registration("https://App.Example:8443/cb", Web).unwrap();
    assert_eq!(https.host(), Some("app.example"));
    assert_eq!(https.scheme(), "https");
    assert!(!https.is_loopback());
    assert!(!https.is_localhost());
    assert!(!https.allows_any_port());
    assert_eq!(https.as_str(), "https://App.Example:8443/cb");

    let localhost = RedirectUri::parse_for_registration("http://localhost:1/cb", Web).unwrap();
    assert!(localhost.is_loopback());
    assert!(localhost.is_localhost());
    assert!(localhost.allows_any_port());

    let ipv6 = RedirectUri::parse_for_registration("http://[::1]/cb", Native).unwrap();
    assert_eq!(ipv6.host(), Some("[::1]"));
    assert!(ipv6.is_loopback());
    assert!(!ipv6.is_localhost());

    let secure_loopback =
        RedirectUri::parse_for_registration("https://127.0.0.1:9/cb", Web).unwrap();
    assert!(secure_loopback.is_loopback());
    assert!(!secure_loopback.allows_any_port());

    let private = RedirectUri::parse_for_registration("com.example.app:/cb", Native).unwrap();
    assert_eq!(private.host(), None);
    assert!(private.is_private_use_scheme());
    assert!(!private.is_loopback());
}

#[test]
fn serializes_as_the_registered_string() {
    let uri = RedirectUri::parse_for_registration("https://a.example/cb?x=1", Web).unwrap();
    assert_eq!(
        serde_json::to_string(&uri).unwrap(),
        "\"https://a.example/cb?x=1\""
    );
    assert_eq!(uri.to_string(), "https://a.example/cb?x=1");
}

#[test]
fn application_type_serde_is_lowercase_and_defaults_to_web() {
    assert_eq!(ApplicationType::default(), Web);
    assert_eq!(serde_json::to_string(&Native).unwrap(), "\"native\"");
    assert_eq!(
        serde_json::from_str::<ApplicationType>("\"web\"").unwrap(),
        Web
    );
    assert!(serde_json::from_str::<ApplicationType>("\"Web\"").is_err());
    assert_eq!(ApplicationType::parse("native"), Some(Native));
    assert_eq!(ApplicationType::parse("browser"), None);
}

#[test]
fn append_query_keeps_existing_queries() {
    assert_eq!(append_query("https://a/cb", ""), "https://a/cb");
    assert_eq!(
        append_query("https://a/cb?x=1&", "y=2"),
        "https://a/cb?x=1&y=2"
    );
    assert_eq!(
        append_query("com.example.app:/cb", "code=1"),
        "com.example.app:/cb?code=1"
    );
}

#[test]
fn errors_map_to_invalid_redirect_uri() {
    let error = OAuthError::from(RedirectUriError::HttpRequiresLoopback);
    assert_eq!(error.code(), ErrorCode::InvalidRedirectUri);
    assert!(error.description().unwrap().contains("loopback"));
}
