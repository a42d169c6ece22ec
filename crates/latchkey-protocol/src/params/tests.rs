//! Tests for form parameters and the typed requests.

use super::*;
use crate::pkce::CodeChallengeMethod;
use crate::redirect::{ApplicationType, RedirectUri};

const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

fn params(body: &str) -> FormParams {
    FormParams::parse(body.as_bytes()).unwrap()
}

// FormParams.

#[test]
fn decodes_plus_and_percent() {
    let parsed = params("a=b+c&d=%26%3D%2B&e=%E2%9C%93&f%20g=h");
    assert_eq!(parsed.get("a"), Some("b c"));
    assert_eq!(parsed.get("d"), Some("&=+"));
    assert_eq!(parsed.get("e"), Some("✓"));
    assert_eq!(parsed.get("f g"), Some("h"));
    assert_eq!(parsed.len(), 4);
}

#[test]
fn empty_values_and_segments_are_absent() {
    let parsed = params("a=&b&&c=1&");
    assert_eq!(parsed.get("a"), None);
    assert_eq!(parsed.get("b"), None);
    assert!(!parsed.contains("a"));
    assert_eq!(parsed.get("c"), Some("1"));
    assert_eq!(parsed.len(), 1);
    assert!(FormParams::parse(b"").unwrap().is_empty());
    assert_eq!(parsed.require("a"), Err(ParamsError::MissingParameter("a")));
}

#[test]
fn repeated_parameters_are_refused_except_resource() {
    assert_eq!(
        FormParams::parse(b"scope=a&scope=b"),
        Err(ParamsError::DuplicateParameter("scope".to_owned()))
    );
    // RFC 6749 §3.1 forbids repeats even when one is empty.
    assert_eq!(
        FormParams::parse(b"state=&state=x"),
        Err(ParamsError::DuplicateParameter("state".to_owned()))
    );
    // Encoded and plain spellings of one name are the same parameter.
    assert_eq!(
        FormParams::parse(b"client_id=a&client%5Fid=b"),
        Err(ParamsError::DuplicateParameter("client_id".to_owned()))
    );
    let parsed = params("resource=a&resource=b");
    assert_eq!(parsed.get_all("resource").collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(
        OAuthError::from(ParamsError::DuplicateParameter("x".to_owned())).code(),
        ErrorCode::InvalidRequest
    );
}

#[test]
fn malformed_encoding_is_refused() {
    for body in [
        &b"a=%"[..],
        b"a=%2",
        b"a=%zz",
        b"a=%C3%28",
        b"%FF=1",
        b"a=\xff",
    ] {
        assert_eq!(
            FormParams::parse(body),
            Err(ParamsError::MalformedEncoding),
            "{body:?}"
        );
    }
}

#[test]
fn limits_are_enforced() {
    let limits = FormLimits {
        max_total_len: 40,
        max_parameters: 3,
        max_name_len: 5,
        max_value_len: 6,
    };
    assert!(FormParams::parse_with_limits(b"a=1&b=2&c=3", &limits).is_ok());
    assert_eq!(
        FormParams::parse_with_limits(b"a=1&b=2&c=3&d=4", &limits),
        Err(ParamsError::TooManyParameters)
    );
    assert_eq!(
        FormParams::parse_with_limits(b"abcdef=1", &limits),
        Err(ParamsError::NameTooLong)
    );
    assert_eq!(
        FormParams::parse_with_limits(b"code=1234567", &limits),
        Err(ParamsError::ValueTooLong("code".to_owned()))
    );
    assert_eq!(
        FormParams::parse_with_limits(&[b'a'; 41], &limits),
        Err(ParamsError::TooLarge)
    );
    let defaults = FormLimits::default();
    let huge = format!("token={}", "a".repeat(defaults.max_value_len + 1));
    assert_eq!(
        FormParams::parse(huge.as_bytes()),
        Err(ParamsError::ValueTooLong("token".to_owned()))
    );
}

#[test]
fn from_query_ignores_a_leading_question_mark() {
    assert_eq!(FormParams::from_query("?a=1").unwrap().get("a"), Some("1"));
    assert_eq!(FormParams::from_query("a=1").unwrap().get("a"), Some("1"));
}

#[test]
fn debug_shows_names_only() {
    let parsed = params("code=super-secret-code&client_secret=hunter2");
    let debug = format!("{parsed:?}");
    assert_eq!(debug, r#"["code", "client_secret"]"#);
    let pairs: Vec<(&str, &str)> = parsed.iter().collect();
    assert_eq!(
        pairs,
        [("code", "super-secret-code"), ("client_secret", "hunter2")]
    );
}

// Authorization requests.

fn registered() -> Vec<RedirectUri> {
    vec![
        RedirectUri::parse_for_registration("https://app.example/cb", ApplicationType::Web)
            .unwrap(),
        RedirectUri::parse_for_registration("http://127.0.0.1/cb", ApplicationType::Web).unwrap(),
    ]
}

fn authorization_query(extra: &str) -> String {
    format!(
        "response_type=code&client_id=c1&redirect_uri=https%3A%2F%2Fapp.example%2Fcb\
         &code_challenge={CHALLENGE}&code_challenge_method=S256&state=st{extra}"
    )
}

fn validate(query: &str) -> Result<AuthorizationRequest, AuthorizationError> {
    let pending = AuthorizationRequest::parse(&params(query)).unwrap();
    let target = pending.resolve_redirect_uri(&registered()).unwrap();
    pending.validate(target)
}

#[test]
fn a_complete_authorization_request_validates() {
    let request = validate(&authorization_query(
        "&scope=mcp+files%3Aread&resource=https%3A%2F%2Fmcp.example.com%2F&prompt=consent&nonce=n-0S6",
    ))
    .unwrap();
    assert_eq!(request.client_id, "c1");
    assert_eq!(request.redirect_uri.as_str(), "https://app.example/cb");
    assert!(request.redirect_uri.sent_in_request());
    assert_eq!(
        request.scope.as_ref().unwrap().to_string(),
        "mcp files:read"
    );
    assert_eq!(request.state.as_deref(), Some("st"));
    assert_eq!(request.code_challenge.as_str(), CHALLENGE);
    assert_eq!(request.code_challenge_method, CodeChallengeMethod::S256);
    assert_eq!(
        request.resource.as_ref().unwrap().as_str(),
        "https://mcp.example.com"
    );
    assert!(request.prompt.consent);
    assert!(!request.prompt.none);
    assert_eq!(request.nonce.as_deref(), Some("n-0S6"));
    assert_eq!(
        request.success_url("code1", "https://as.example"),
        "https://app.example/cb?code=code1&state=st&iss=https%3A%2F%2Fas.example"
    );
}

#[test]
fn stage_one_needs_only_client_id() {
    let pending = AuthorizationRequest::parse(&params("client_id=c1&state=x%20y")).unwrap();
    assert_eq!(pending.client_id(), "c1");
    assert_eq!(pending.redirect_uri(), None);
    assert_eq!(pending.state(), Some("x y"));
    assert_eq!(
        AuthorizationRequest::parse(&params("response_type=code")).unwrap_err(),
        ParamsError::MissingParameter("client_id")
    );
}

#[test]
fn redirect_uri_resolution() {
    let pending = AuthorizationRequest::parse(&params(
        "client_id=c1&redirect_uri=http%3A%2F%2F127.0.0.1%3A6000%2Fcb",
    ))
    .unwrap();
    let target = pending.resolve_redirect_uri(&registered()).unwrap();
    assert_eq!(target.as_str(), "http://127.0.0.1:6000/cb");

    let unregistered = AuthorizationRequest::parse(&params(
        "client_id=c1&redirect_uri=https%3A%2F%2Fevil.example%2Fcb",
    ))
    .unwrap();
    assert_eq!(
        unregistered.resolve_redirect_uri(&registered()),
        Err(ParamsError::RedirectUriNotRegistered)
    );

    let omitted = AuthorizationRequest::parse(&params("client_id=c1")).unwrap();
    assert_eq!(
        omitted.resolve_redirect_uri(&registered()),
        Err(ParamsError::RedirectUriRequired)
    );
    assert_eq!(
        omitted.resolve_redirect_uri(&[]),
        Err(ParamsError::RedirectUriRequired)
    );
    let only = registered().into_iter().take(1).collect::<Vec<_>>();
    let target = omitted.resolve_redirect_uri(&only).unwrap();
    assert_eq!(target.as_str(), "https://app.example/cb");
    assert!(!target.sent_in_request());
}

#[test]
fn stage_three_errors_are_redirected_with_state_and_iss() {
    let table = [
        (
            authorization_query("").replace("response_type=code&", ""),
            ErrorCode::InvalidRequest,
        ),
        (
            authorization_query("").replace("response_type=code", "response_type=token"),
            ErrorCode::UnsupportedResponseType,
        ),
        (
            authorization_query("").replace("response_type=code", "response_type=code+id_token"),
            ErrorCode::UnsupportedResponseType,
        ),
        (
            authorization_query("&response_mode=fragment"),
            ErrorCode::InvalidRequest,
        ),
        (
            authorization_query("").replace(&format!("code_challenge={CHALLENGE}&"), ""),
            ErrorCode::InvalidRequest,
        ),
        (
            authorization_query("").replace(CHALLENGE, "short"),
            ErrorCode::InvalidRequest,
        ),
        (
            authorization_query("").replace("&code_challenge_method=S256", ""),
            ErrorCode::InvalidRequest,
        ),
        (
            authorization_query("").replace("S256", "plain"),
            ErrorCode::InvalidRequest,
        ),
        (authorization_query("&scope=a%22b"), ErrorCode::InvalidScope),
        (
            authorization_query(
                "&resource=https%3A%2F%2Fa.example&resource=https%3A%2F%2Fb.example",
            ),
            ErrorCode::InvalidTarget,
        ),
        (
            authorization_query("&resource=https%3A%2F%2Fa.example%2F%23frag"),
            ErrorCode::InvalidTarget,
        ),
        (
            authorization_query("&resource=mcp"),
            ErrorCode::InvalidTarget,
        ),
        (
            authorization_query("&prompt=none+consent"),
            ErrorCode::InvalidRequest,
        ),
    ];
    for (query, code) in table {
        let error = validate(&query).unwrap_err();
        assert_eq!(error.code(), code, "{query}");
        assert_eq!(error.state(), Some("st"));
        assert_eq!(error.redirect().as_str(), "https://app.example/cb");
        let url = error.redirect_url("https://as.example");
        assert!(
            url.starts_with(&format!("https://app.example/cb?error={}", code.as_str())),
            "{url}"
        );
        assert!(
            url.ends_with("&state=st&iss=https%3A%2F%2Fas.example"),
            "{url}"
        );
    }
}

#[test]
fn plain_pkce_error_names_s256() {
    let error = validate(&authorization_query("").replace("S256", "plain")).unwrap_err();
    assert!(error.to_string().contains("S256"), "{error}");
}

#[test]
fn the_same_resource_twice_is_one_resource() {
    let request = validate(&authorization_query(
        "&resource=https%3A%2F%2Fa.example&resource=https%3A%2F%2FA.example%2F",
    ))
    .unwrap();
    assert_eq!(request.resource.unwrap().as_str(), "https://a.example");
}

#[test]
fn prompt_values() {
    assert_eq!(Prompt::parse(None).unwrap(), Prompt::default());
    let prompt = Prompt::parse(Some("login consent select_account create")).unwrap();
    assert!(prompt.login && prompt.consent && prompt.select_account && !prompt.none);
    assert!(Prompt::parse(Some("none")).unwrap().none);
    assert!(Prompt::parse(Some("none login")).is_err());
}

#[test]
fn error_urls_keep_the_registered_query() {
    let registered = vec![
        RedirectUri::parse_for_registration(
            "https://app.example/cb?tenant=7",
            ApplicationType::Web,
        )
        .unwrap(),
    ];
    let pending = AuthorizationRequest::parse(&params(
        "client_id=c1&response_type=token&redirect_uri=https%3A%2F%2Fapp.example%2Fcb%3Ftenant%3D7",
    ))
    .unwrap();
    let target = pending.resolve_redirect_uri(&registered).unwrap();
    let error = pending.validate(target).unwrap_err();
    assert_eq!(
        error.redirect_url("https://as.example"),
        "https://app.example/cb?tenant=7&error=unsupported_response_type\
         &error_description=response_type+token+is+not+supported%3A+only+code+is\
         &iss=https%3A%2F%2Fas.example"
    );
}

// Token requests.

#[test]
fn authorization_code_grant() {
    let request = TokenRequest::parse(&params(&format!(
        "grant_type=authorization_code&code=SplxlOBeZQQYbYS6WxSbIA\
         &redirect_uri=https%3A%2F%2Fapp.example%2Fcb&code_verifier={VERIFIER}\
         &client_id=c1&resource=https%3A%2F%2Fmcp.example.com%2Fmcp"
    )))
    .unwrap();
    assert_eq!(
        request.grant_type(),
        crate::client::GrantType::AuthorizationCode
    );
    assert_eq!(request.client_id(), Some("c1"));
    assert_eq!(
        request.resource().unwrap().as_str(),
        "https://mcp.example.com/mcp"
    );
    let TokenRequest::AuthorizationCode {
        code,
        redirect_uri,
        code_verifier,
        ..
    } = &request
    else {
        panic!("{request:?}");
    };
    assert_eq!(code.expose(), "SplxlOBeZQQYbYS6WxSbIA");
    assert_eq!(redirect_uri.as_deref(), Some("https://app.example/cb"));
    assert_eq!(code_verifier.as_str(), VERIFIER);
    let debug = format!("{request:?}");
    assert!(
        !debug.contains("SplxlOBeZQQYbYS6WxSbIA") && !debug.contains(VERIFIER),
        "{debug}"
    );
}

#[test]
fn refresh_and_client_credentials_grants() {
    let refresh =
        TokenRequest::parse(&params("grant_type=refresh_token&refresh_token=rt&scope=a")).unwrap();
    assert_eq!(refresh.grant_type(), crate::client::GrantType::RefreshToken);
    assert_eq!(refresh.client_id(), None);
    assert!(refresh.resource().is_none());
    assert!(!format!("{refresh:?}").contains("\"rt\""));

    let credentials = TokenRequest::parse(&params(
        "grant_type=client_credentials&scope=batch&resource=https%3A%2F%2Fapi.example",
    ))
    .unwrap();
    assert_eq!(
        credentials,
        TokenRequest::ClientCredentials {
            scope: Some(ScopeSet::parse("batch").unwrap()),
            resource: Some(ResourceUri::parse("https://api.example").unwrap()),
            client_id: None,
        }
    );
}

#[test]
fn token_request_refusals() {
    let table = [
        ("code=x", ErrorCode::InvalidRequest),
        (
            "grant_type=password&username=a&password=b",
            ErrorCode::UnsupportedGrantType,
        ),
        ("grant_type=implicit", ErrorCode::UnsupportedGrantType),
        (
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code",
            ErrorCode::UnsupportedGrantType,
        ),
        (
            "grant_type=authorization_code&code_verifier=x",
            ErrorCode::InvalidRequest,
        ),
        (
            "grant_type=authorization_code&code=c",
            ErrorCode::InvalidRequest,
        ),
        (
            "grant_type=authorization_code&code=c&code_verifier=short",
            ErrorCode::InvalidRequest,
        ),
        ("grant_type=refresh_token", ErrorCode::InvalidRequest),
        (
            "grant_type=refresh_token&refresh_token=r&scope=%22",
            ErrorCode::InvalidScope,
        ),
        (
            "grant_type=client_credentials&resource=https%3A%2F%2Fa.example&resource=https%3A%2F%2Fb.example",
            ErrorCode::InvalidTarget,
        ),
        (
            "grant_type=client_credentials&resource=http%3A%2F%2Fa.example",
            ErrorCode::InvalidTarget,
        ),
    ];
    for (body, code) in table {
        let error = TokenRequest::parse(&params(body)).unwrap_err();
        assert_eq!(error.error_code(), code, "{body}: {error}");
    }
}

#[test]
fn revocation_and_introspection() {
    let revocation =
        RevocationRequest::parse(&params("token=abc&token_type_hint=refresh_token")).unwrap();
    assert_eq!(revocation.token.expose(), "abc");
    assert_eq!(
        revocation.token_type_hint,
        Some(TokenTypeHint::RefreshToken)
    );
    let unknown_hint =
        RevocationRequest::parse(&params("token=abc&token_type_hint=id_token")).unwrap();
    assert_eq!(unknown_hint.token_type_hint, None);
    assert_eq!(
        RevocationRequest::parse(&params("token_type_hint=access_token")),
        Err(ParamsError::MissingParameter("token"))
    );

    let introspection =
        IntrospectionRequest::parse(&params("token=xyz&token_type_hint=access_token")).unwrap();
    assert_eq!(introspection.token.expose(), "xyz");
    assert_eq!(
        introspection.token_type_hint,
        Some(TokenTypeHint::AccessToken)
    );
    assert_eq!(TokenTypeHint::AccessToken.as_str(), "access_token");
    assert!(IntrospectionRequest::parse(&params("")).is_err());
}
