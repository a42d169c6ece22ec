//! Which resource a grant is for and which scopes it carries: the policy
//! shared by the authorization request (next issue), the code exchange,
//! refresh and client credentials.
//!
//! Resource (RFC 8707):
//! - a requested resource must be one of the configured resources
//!   (compared in canonical form, so `https://h` and `https://h/` are one),
//!   otherwise `invalid_target`;
//! - no resource while `require_resource` is on (the MCP profile):
//!   `invalid_target` ("resource is required"; RFC 8707 §2 lists a missing
//!   resource under `invalid_target`); while off, the only configured
//!   resource, or `invalid_target` when there are several.
//!
//! Scope (RFC 6749 §3.3):
//! - what may be granted is the resource's allowed scopes, intersected
//!   with the client's registered `scope` if it registered one, plus
//!   `offline_access`, which is always permitted (it only signals that the
//!   client wants a refresh token; MCP SDKs append it to whatever scope they
//!   registered);
//! - a requested scope outside that is `invalid_scope`, naming the scopes;
//! - no scope requested means everything the resource allows (and the
//!   client registered), without `offline_access`.
//!
//! Scopes are compared flat (a scope covers only itself): hierarchies are
//! the resource server's business when it checks a token.

use latchkey_protocol::OAuthError;
use latchkey_protocol::resource::ResourceUri;
use latchkey_protocol::scope::{Scope, ScopeSet};

use crate::config::{ConfiguredResource, OFFLINE_ACCESS, ServiceConfig};
use crate::error::FlowError;

/// Picks the configured resource a request is for.
pub fn resolve_resource<'a>(
    config: &'a ServiceConfig,
    requested: Option<&ResourceUri>,
) -> Result<&'a ConfiguredResource, FlowError> {
    if config.resources.is_empty() {
        // Say so plainly: the operator has not configured any resource yet.
        return Err(FlowError::OAuth(OAuthError::invalid_target(
            "no protected resource is configured on this authorization server",
        )));
    }
    match requested {
        Some(uri) => config.resources.get(uri).ok_or_else(|| {
            FlowError::OAuth(OAuthError::invalid_target(
                "the resource is not served by this authorization server",
            ))
        }),
        None if config.require_resource => Err(FlowError::OAuth(OAuthError::invalid_target(
            "resource is required: name the protected resource (RFC 8707)",
        ))),
        None => config.resources.only().ok_or_else(|| {
            FlowError::OAuth(OAuthError::invalid_target(
                "resource is required: several protected resources are served",
            ))
        }),
    }
}

/// The scopes a client may be granted for a resource.
pub fn permitted_scopes(resource: &ConfiguredResource, registered: Option<&ScopeSet>) -> ScopeSet {
    let mut permitted = match registered {
        Some(registered) => resource.scopes.intersection(registered),
        None => resource.scopes.clone(),
    };
    // The insert cannot exceed the cap of a set built from configuration,
    // and a failure would only mean offline_access is not offered.
    if let Ok(offline_access) = Scope::parse(OFFLINE_ACCESS) {
        let _ = permitted.insert(offline_access);
    }
    permitted
}

/// The scopes to grant for a request.
pub fn resolve_scopes(
    requested: Option<&ScopeSet>,
    resource: &ConfiguredResource,
    registered: Option<&ScopeSet>,
) -> Result<ScopeSet, FlowError> {
    let permitted = permitted_scopes(resource, registered);
    match requested {
        Some(requested) if !requested.is_empty() => {
            let refused = requested.difference(&permitted);
            if refused.is_empty() {
                Ok(requested.clone())
            } else {
                Err(FlowError::OAuth(OAuthError::invalid_scope(format!(
                    "scope not allowed for this client and resource: {refused}"
                ))))
            }
        }
        _ => Ok(permitted.difference(&offline_access_set())),
    }
}

/// `{offline_access}`.
fn offline_access_set() -> ScopeSet {
    ScopeSet::parse(OFFLINE_ACCESS).unwrap_or_default()
}

/// Stored scope lists (the store keeps `Vec<String>`) as a set.
pub(crate) fn scopes_from_store(scopes: &[String]) -> Result<ScopeSet, FlowError> {
    let parsed: Result<Vec<Scope>, _> = scopes.iter().map(|scope| Scope::parse(scope)).collect();
    parsed
        .map(|scopes| scopes.into_iter().collect())
        .map_err(|error| FlowError::Internal(format!("a stored scope does not parse: {error}")))
}

/// A set as the store keeps it.
pub(crate) fn scopes_to_store(scopes: &ScopeSet) -> Vec<String> {
    scopes
        .iter()
        .map(|scope| scope.as_str().to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ResourceRegistry;
    use latchkey_protocol::ErrorCode;

    fn config(resources: &[&str], require_resource: bool) -> ServiceConfig {
        let mut config = ServiceConfig::new("https://auth.example.com");
        config.resources = ResourceRegistry::new(
            resources
                .iter()
                .map(|spec| ConfiguredResource::parse_spec(spec).unwrap()),
        )
        .unwrap();
        config.require_resource = require_resource;
        config
    }

    const MCP_URI: &str = "https://mcp.example.com/mcp";

    fn uri(raw: &str) -> ResourceUri {
        ResourceUri::parse(raw).unwrap()
    }

    fn scopes(raw: &str) -> ScopeSet {
        ScopeSet::parse(raw).unwrap()
    }

    fn code(outcome: Result<impl std::fmt::Debug, FlowError>) -> ErrorCode {
        match outcome {
            Err(FlowError::OAuth(error)) => error.code(),
            other => panic!("expected an OAuth error, got {other:?}"),
        }
    }

    #[test]
    fn the_resource_policy_table() {
        let one = config(&["https://mcp.example.com/mcp=a"], true);
        let one_optional = config(&["https://mcp.example.com/mcp=a"], false);
        let two_optional = config(&["https://a.example/mcp", "https://b.example/mcp"], false);
        let none_optional = config(&[], false);

        // Canonical comparison.
        let found = resolve_resource(&one, Some(&uri("HTTPS://MCP.example.com:443/mcp"))).unwrap();
        assert_eq!(found.uri.as_str(), "https://mcp.example.com/mcp");
        let bare = config(&["https://mcp.example.com"], true);
        assert!(resolve_resource(&bare, Some(&uri("https://mcp.example.com/"))).is_ok());

        // Unknown and missing resources are invalid_target.
        assert_eq!(
            code(resolve_resource(
                &one,
                Some(&uri("https://mcp.example.com/other"))
            )),
            ErrorCode::InvalidTarget
        );
        assert_eq!(code(resolve_resource(&one, None)), ErrorCode::InvalidTarget);
        assert_eq!(
            code(resolve_resource(&two_optional, None)),
            ErrorCode::InvalidTarget
        );
        assert_eq!(
            code(resolve_resource(&none_optional, None)),
            ErrorCode::InvalidTarget
        );
        let none_required = config(&[], true);
        let Err(FlowError::OAuth(error)) = resolve_resource(&none_required, Some(&uri(MCP_URI)))
        else {
            panic!("expected invalid_target");
        };
        assert!(
            error
                .description()
                .unwrap()
                .contains("no protected resource is configured")
        );

        // Optional with exactly one configured: it is the default.
        assert_eq!(
            resolve_resource(&one_optional, None).unwrap().uri.as_str(),
            "https://mcp.example.com/mcp"
        );
    }

    #[test]
    fn the_scope_policy_table() {
        let resource =
            ConfiguredResource::parse_spec("https://mcp.example.com/mcp=read,write,admin").unwrap();
        let client_restricted = scopes("read write");
        // (requested, registered, expected granted or None for invalid_scope)
        let table: [(Option<&str>, Option<&ScopeSet>, Option<&str>); 10] = [
            (None, None, Some("read write admin")),
            (Some(""), None, Some("read write admin")),
            (None, Some(&client_restricted), Some("read write")),
            (Some("read"), None, Some("read")),
            (
                Some("read offline_access"),
                None,
                Some("read offline_access"),
            ),
            (
                Some("offline_access"),
                Some(&client_restricted),
                Some("offline_access"),
            ),
            (Some("admin"), Some(&client_restricted), None),
            (Some("read delete"), None, None),
            (
                Some("write read"),
                Some(&client_restricted),
                Some("write read"),
            ),
            (Some("other"), None, None),
        ];
        for (requested, registered, expected) in table {
            let requested_set = requested.map(scopes);
            let outcome = resolve_scopes(requested_set.as_ref(), &resource, registered);
            match expected {
                Some(granted) => assert_eq!(
                    outcome.unwrap(),
                    scopes(granted),
                    "{requested:?} with {registered:?}"
                ),
                None => assert_eq!(code(outcome), ErrorCode::InvalidScope, "{requested:?}"),
            }
        }
    }

    #[test]
    fn refused_scopes_are_named() {
        let resource = ConfiguredResource::parse_spec("https://mcp.example.com/mcp=read").unwrap();
        let Err(FlowError::OAuth(error)) =
            resolve_scopes(Some(&scopes("read delete drop")), &resource, None)
        else {
            panic!("expected invalid_scope");
        };
        assert!(error.description().unwrap().ends_with("delete drop"));
    }

    #[test]
    fn a_resource_without_scopes_grants_none() {
        let resource = ConfiguredResource::parse_spec("https://mcp.example.com/mcp").unwrap();
        assert!(resolve_scopes(None, &resource, None).unwrap().is_empty());
        assert_eq!(
            code(resolve_scopes(Some(&scopes("read")), &resource, None)),
            ErrorCode::InvalidScope
        );
    }

    #[test]
    fn stored_scopes_round_trip() {
        let set = scopes("a b:c offline_access");
        assert_eq!(scopes_from_store(&scopes_to_store(&set)).unwrap(), set);
        assert!(scopes_from_store(&["bad scope".to_owned()]).is_err());
    }
}
