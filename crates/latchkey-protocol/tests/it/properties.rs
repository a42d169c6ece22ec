//! Property tests: parsers never panic, and build/parse round trips hold.

use base64::Engine as _;
use proptest::prelude::*;

use latchkey_protocol::challenge::BearerChallenge;
use latchkey_protocol::client::{ClientIdUrl, ClientMetadata, validate_metadata_document};
use latchkey_protocol::client_auth::{ClientCredentials, parse_basic};
use latchkey_protocol::error::{OAuthError, is_description_char, sanitize_description};
use latchkey_protocol::metadata::{well_known_path, well_known_url};
use latchkey_protocol::params::{
    AuthorizationRequest, FormParams, IntrospectionRequest, RevocationRequest, TokenRequest,
};
use latchkey_protocol::pkce::{CodeChallenge, CodeVerifier};
use latchkey_protocol::redirect::{ApplicationType, RedirectUri};
use latchkey_protocol::resource::ResourceUri;
use latchkey_protocol::scope::{MAX_SCOPES, Scope, ScopeSet, is_scope_char};

/// Strings biased towards URI-ish characters, so that parsers get past
/// their first checks, plus fully arbitrary text.
fn uri_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z][a-zA-Z0-9+.-]{0,8}:(//)?[a-zA-Z0-9.:@\\[\\]%*-]{0,20}(/[a-zA-Z0-9._~%!$&'()*+,;=:@-]{0,12}){0,4}(\\?[a-z0-9=&%]{0,10})?(#[a-z]{0,4})?",
        "(https?|HTTPS?|com\\.example\\.app)://(localhost|127\\.0\\.0\\.1|\\[::1\\]|[a-z]{1,8}\\.example)(:[0-9]{0,6})?(/[a-z./%]{0,10}){0,3}(\\?[a-z=&]{0,6})?",
        any::<String>(),
    ]
}

/// A valid scope-token.
fn scope_token() -> impl Strategy<Value = String> {
    "[\\x21\\x23-\\x5b\\x5d-\\x7e]{1,20}"
}

/// Printable ASCII, including `"` and `\`.
fn printable() -> impl Strategy<Value = String> {
    "[ -~]{0,40}"
}

proptest! {
    #[test]
    fn scope_parsing_is_total(input in any::<String>()) {
        if let Ok(set) = ScopeSet::parse(&input) {
            prop_assert!(set.len() <= MAX_SCOPES);
            for scope in &set {
                prop_assert_eq!(&Scope::parse(scope.as_str()).unwrap(), scope);
                prop_assert!(input.split(' ').any(|token| token == scope.as_str()));
            }
        }
        if let Ok(scope) = Scope::parse(&input) {
            prop_assert_eq!(scope.as_str(), input.as_str());
            prop_assert!(input.chars().all(is_scope_char));
        }
    }

    #[test]
    fn scope_sets_round_trip(tokens in proptest::collection::vec(scope_token(), 0..20), spaces in 1usize..4) {
        let joined = tokens.join(&" ".repeat(spaces));
        let set = ScopeSet::parse(&joined).unwrap();
        let mut expected: Vec<&str> = Vec::new();
        for token in &tokens {
            if !expected.contains(&token.as_str()) {
                expected.push(token);
            }
        }
        prop_assert_eq!(set.to_string(), expected.join(" "));
        let reparsed = ScopeSet::parse(&set.to_string()).unwrap();
        prop_assert_eq!(&reparsed, &set);
        prop_assert_eq!(reparsed.to_string(), set.to_string());
        prop_assert!(set.is_subset_of(&reparsed));
        prop_assert_eq!(set.intersection(&reparsed).len(), set.len());
    }

    #[test]
    fn challenge_parsing_is_total(input in any::<String>()) {
        assert_parse_is_stable(&input)?;
    }

    #[test]
    fn challenge_parsing_is_total_on_header_like_input(
        input in "(Basic|Bearer|bearer|DPoP)?[ ,]{0,2}([a-z_]{0,10} ?= ?(\"[ -~]{0,10}\"?|[a-z0-9=/:]{0,6}),? ?){0,4}"
    ) {
        assert_parse_is_stable(&input)?;
    }

    #[test]
    fn challenges_round_trip(
        realm in proptest::option::of(printable()),
        error in proptest::option::of(printable()),
        error_description in proptest::option::of(printable()),
        scope in proptest::option::of(printable()),
        resource_metadata in proptest::option::of(printable()),
    ) {
        let challenge = BearerChallenge { realm, error, error_description, scope, resource_metadata };
        let header = challenge.to_header_value();
        prop_assert!(header.starts_with("Bearer"));
        prop_assert_eq!(BearerChallenge::parse(&header).unwrap(), challenge.clone());
        // Also when another challenge comes first.
        let combined = format!("Basic realm=\"x\", {header}");
        prop_assert_eq!(BearerChallenge::parse(&combined).unwrap(), challenge);
    }

    #[test]
    fn resource_parsing_is_total_and_idempotent(input in uri_like()) {
        if let Ok(resource) = ResourceUri::parse(&input) {
            let again = ResourceUri::parse(resource.as_str()).unwrap();
            prop_assert_eq!(again.as_str(), resource.as_str());
            let canonical = resource.as_str();
            prop_assert!(canonical.starts_with("https://") || canonical.starts_with("http://"));
            prop_assert!(!canonical.contains('#'));
            // After the authority comes nothing, a non-root path, or a query.
            let after_scheme = canonical.split_once("://").unwrap().1;
            let after_host = after_scheme.strip_prefix(resource.host()).unwrap();
            let rest = after_host.trim_start_matches(|c: char| c == ':' || c.is_ascii_digit());
            prop_assert!(rest != "/");
            prop_assert!(rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'));
            prop_assert_eq!(resource.host(), resource.host().to_ascii_lowercase());
        }
    }

    #[test]
    fn resource_canonicalization_ignores_case_default_port_and_root_slash(
        host in "[a-z]{1,10}(\\.[a-z]{1,6}){1,2}",
        upper in any::<bool>(),
        port in proptest::option::of(prop_oneof![Just(443u16), 1u16..=65535]),
        path in proptest::option::of("(/[a-zA-Z0-9._~-]{1,8}){1,3}/?"),
    ) {
        let scheme = if upper { "HTTPS" } else { "https" };
        let shown_host = if upper { host.to_ascii_uppercase() } else { host.clone() };
        let port_part = port.map(|port| format!(":{port}")).unwrap_or_default();
        let raw = format!("{scheme}://{shown_host}{port_part}{}", path.clone().unwrap_or_else(|| "/".to_owned()));
        let resource = ResourceUri::parse(&raw).unwrap();
        let expected_port = match port { Some(443) | None => String::new(), Some(other) => format!(":{other}") };
        prop_assert_eq!(
            resource.as_str(),
            format!("https://{host}{expected_port}{}", path.unwrap_or_default())
        );
    }

    #[test]
    fn redirect_parsing_and_matching_are_total(input in uri_like(), requested in uri_like(), native in any::<bool>()) {
        let application_type = if native { ApplicationType::Native } else { ApplicationType::Web };
        if let Ok(uri) = RedirectUri::parse_for_registration(&input, application_type) {
            prop_assert!(uri.matches(uri.as_str()));
            if uri.matches(&requested) && !uri.allows_any_port() {
                prop_assert_eq!(uri.as_str(), requested.as_str());
            }
            prop_assert!(!uri.is_localhost() || uri.is_loopback());
        }
    }

    #[test]
    fn loopback_redirects_match_any_port(
        host in prop_oneof![Just("127.0.0.1"), Just("[::1]"), Just("localhost")],
        registered_port in proptest::option::of(1u16..=65535),
        requested_port in 1u16..=65535,
        path in "(/[a-z]{1,6}){0,3}",
    ) {
        let registered_port = registered_port.map(|port| format!(":{port}")).unwrap_or_default();
        let registered = RedirectUri::parse_for_registration(
            &format!("http://{host}{registered_port}{path}"),
            ApplicationType::Native,
        ).unwrap();
        let requested = format!("http://{host}:{requested_port}{path}");
        prop_assert!(registered.matches(&requested));
        let other_path = format!("{requested}/x");
        prop_assert!(!registered.matches(&other_path));
        let https = requested.replacen("http", "https", 1);
        prop_assert!(!registered.matches(&https));
    }

    #[test]
    fn pkce_parsing_is_total(input in any::<String>()) {
        if let Ok(verifier) = CodeVerifier::parse(&input) {
            prop_assert!((43..=128).contains(&verifier.as_str().len()));
        }
        if let Ok(challenge) = CodeChallenge::parse(&input) {
            prop_assert_eq!(challenge.as_str().len(), 43);
        }
    }

    #[test]
    fn pkce_s256_round_trips(verifier in "[A-Za-z0-9._~-]{43,128}") {
        let verifier = CodeVerifier::parse(&verifier).unwrap();
        let challenge = CodeChallenge::s256(&verifier);
        let parsed = CodeChallenge::parse(challenge.as_str()).unwrap();
        prop_assert!(parsed.verify(&verifier).is_ok());
    }

    #[test]
    fn form_parsing_is_total(input in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(params) = FormParams::parse(&input) {
            assert_requests_agree_with_params(&params)?;
        }
    }

    #[test]
    fn form_parsing_is_total_on_form_like_input(
        input in "([a-z_]{1,12}=[a-zA-Z0-9%+:/._~-]{0,20}&?){0,8}"
    ) {
        if let Ok(params) = FormParams::parse(input.as_bytes()) {
            assert_requests_agree_with_params(&params)?;
        }
    }

    #[test]
    fn form_params_round_trip(pairs in proptest::collection::btree_map("[a-z_]{1,10}", any::<String>(), 0..10)) {
        let mut serializer = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in &pairs {
            serializer.append_pair(name, value);
        }
        let body = serializer.finish();
        let params = FormParams::parse(body.as_bytes()).unwrap();
        for (name, value) in &pairs {
            let expected = if value.is_empty() { None } else { Some(value.as_str()) };
            prop_assert_eq!(params.get(name), expected);
        }
        let from_query = FormParams::from_query(&format!("?{body}")).unwrap();
        prop_assert_eq!(from_query, params);
    }

    #[test]
    fn basic_credentials_round_trip(id in ".{1,30}", secret in ".{0,30}") {
        let encode = |text: &str| url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
        let header = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", encode(&id), encode(&secret)))
        );
        prop_assert_eq!(parse_basic(&header).unwrap(), (id, secret));
    }

    #[test]
    fn basic_parsing_is_total(input in any::<String>()) {
        if let Ok((client_id, _)) = parse_basic(&input) {
            prop_assert!(!client_id.is_empty());
        }
        if let Ok(credentials) = ClientCredentials::from_request(Some(&input), &FormParams::default()) {
            prop_assert!(!credentials.client_id().is_empty());
        }
    }

    #[test]
    fn client_metadata_parsing_is_total(input in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(metadata) = ClientMetadata::from_json(&input)
            && let Ok(client) = metadata.validate_registration()
        {
            prop_assert_eq!(client.client_id(), None);
        }
        let url = ClientIdUrl::parse("https://app.example/client.json").unwrap();
        if let Ok(client) = validate_metadata_document(&url, &input) {
            prop_assert_eq!(client.client_id(), Some(url.as_str()));
        }
    }

    #[test]
    fn client_metadata_validation_is_total_on_json_like_input(
        redirect in uri_like(),
        auth in prop_oneof![Just("none"), Just("client_secret_basic"), Just("private_key_jwt"), Just("x")],
        grant in prop_oneof![Just("authorization_code"), Just("client_credentials"), Just("refresh_token"), Just("implicit")],
        name in any::<String>(),
        contact in any::<String>(),
        native in any::<bool>(),
    ) {
        let body = serde_json::json!({
            "redirect_uris": [redirect],
            "token_endpoint_auth_method": auth,
            "grant_types": [grant],
            "client_name": name,
            "contacts": [contact],
            "application_type": if native { "native" } else { "web" },
        });
        if let Ok(client) = ClientMetadata::from_value(body).unwrap().validate_registration() {
            // What validated once validates again from its own JSON.
            let again = ClientMetadata::from_value(client.to_json()).unwrap().validate_registration().unwrap();
            prop_assert_eq!(again, client);
        }
    }

    #[test]
    fn client_id_url_parsing_is_total(input in uri_like()) {
        if let Ok(url) = ClientIdUrl::parse(&input) {
            prop_assert_eq!(url.as_str(), input.as_str());
            prop_assert!(ClientIdUrl::looks_like_url(url.as_str()));
        }
    }

    #[test]
    fn well_known_construction_is_total_and_consistent(input in uri_like()) {
        if let Ok(url) = well_known_url(&input, "oauth-authorization-server") {
            let path = well_known_path(&input, "oauth-authorization-server").unwrap();
            prop_assert!(url.contains(&path));
        }
    }

    #[test]
    fn descriptions_are_always_header_safe(input in any::<String>()) {
        let sanitized = sanitize_description(&input);
        prop_assert!(sanitized.chars().all(is_description_char));
        let error = OAuthError::invalid_request(input);
        prop_assert!(error.description().unwrap_or_default().chars().all(is_description_char));
    }
}

/// Parsing what was parsed and rebuilt gives the same challenge.
fn assert_parse_is_stable(input: &str) -> Result<(), TestCaseError> {
    if let Ok(challenge) = BearerChallenge::parse(input) {
        let rebuilt = challenge.to_header_value();
        let reparsed = BearerChallenge::parse(&rebuilt).unwrap();
        // Values are printable ASCII after a rebuild; compare what survives.
        prop_assert_eq!(reparsed.to_header_value(), rebuilt);
        prop_assert_eq!(reparsed.realm.is_some(), challenge.realm.is_some());
        prop_assert_eq!(reparsed.error.is_some(), challenge.error.is_some());
    }
    Ok(())
}

/// Whatever the typed requests accept agrees with the raw parameters.
fn assert_requests_agree_with_params(params: &FormParams) -> Result<(), TestCaseError> {
    for (name, value) in params.iter() {
        prop_assert!(!value.is_empty());
        prop_assert!(params.get(name).is_some());
    }
    if let Ok(pending) = AuthorizationRequest::parse(params) {
        prop_assert_eq!(Some(pending.client_id()), params.get("client_id"));
        prop_assert!(pending.resolve_redirect_uri(&[]).is_err());
    }
    if let Ok(request) = TokenRequest::parse(params) {
        prop_assert_eq!(
            Some(request.grant_type().as_str()),
            params.get("grant_type")
        );
    }
    if let Ok(request) = RevocationRequest::parse(params) {
        prop_assert_eq!(Some(request.token.expose()), params.get("token"));
    }
    if let Ok(request) = IntrospectionRequest::parse(params) {
        prop_assert_eq!(Some(request.token.expose()), params.get("token"));
    }
    if let Ok(credentials) = ClientCredentials::from_request(None, params) {
        prop_assert_eq!(Some(credentials.client_id()), params.get("client_id"));
    }
    Ok(())
}
