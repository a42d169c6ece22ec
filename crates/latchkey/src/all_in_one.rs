//! All-in-one mode, `latchkey serve --guard-upstream`: the guard of
//! `latchkey_resource::proxy` inside the authorization server, on its
//! listener. This module resolves the `--guard-*` settings, adds the guarded
//! resource (`<issuer origin><--guard-path>`) to the server's resources,
//! and builds the proxy with the service's own public keys handed over
//! in-process ([`ServiceKeys`]): no HTTP call to itself. `serve.rs` merges
//! the proxy's router into the server's and, after every key reload that
//! changed something, refreshes the guard's keys at once.
//!
//! Invariant: the guarded path never shadows a path the authorization
//! server serves (axum would panic on the overlap; this refuses it first,
//! with a message).

use std::sync::Arc;

use anyhow::Context as _;
use latchkey_http::Paths;
use latchkey_protocol::resource::ResourceUri;
use latchkey_protocol::scope::ScopeHierarchy;
use latchkey_resource::proxy::{GuardProxy, IdentityHeaders};
use latchkey_resource::{
    DEFAULT_BODY_LIMIT, Jwks, KeySource, KeySourceError, MetadataOptions, TrustedIssuer,
};
use latchkey_service::Service;
use latchkey_service::config::{ConfiguredResource, ResourceRegistry, ServiceConfig};

use crate::config::{FileConfig, duration};
use crate::guard::{self, ProxySettings};
use crate::serve::ServeArgs;

/// The all-in-one guard (`--guard-upstream`), resolved.
#[derive(Debug)]
pub(crate) struct AllInOne {
    /// The MCP endpoint's path on the issuer's origin.
    pub(crate) path: String,
    /// The proxy settings.
    pub(crate) proxy: ProxySettings,
}

/// The default path of the guarded MCP endpoint in all-in-one mode.
const DEFAULT_GUARD_PATH: &str = "/mcp";

/// The all-in-one guard's settings, when `--guard-upstream` (or `guard_upstream`) is set.
pub(crate) fn settings(args: &ServeArgs, file: &FileConfig) -> anyhow::Result<Option<AllInOne>> {
    let Some(upstream) = args
        .guard_upstream
        .clone()
        .or_else(|| file.guard_upstream.clone())
        .filter(|upstream| !upstream.trim().is_empty())
    else {
        return Ok(None);
    };
    let path = args
        .guard_path
        .clone()
        .or_else(|| file.guard_path.clone())
        .unwrap_or_else(|| DEFAULT_GUARD_PATH.to_owned());
    let policy = guard::scope_policy(
        args.guard_scope.as_deref().or(file.guard_scope.as_deref()),
        Vec::new(),
        guard::pick_specs(
            "guard-method-scope",
            &args.guard_method_scopes,
            &file.guard_method_scopes,
        )?,
        guard::pick_specs(
            "guard-tool-scope",
            &args.guard_tool_scopes,
            &file.guard_tool_scopes,
        )?,
    )?;
    let leeway = duration(
        args.guard_leeway,
        file.guard_leeway.as_ref(),
        "guard_leeway",
        guard::DEFAULT_LEEWAY,
    )?;
    let proxy = ProxySettings {
        upstream,
        policy,
        hierarchy: ScopeHierarchy::new(),
        leeway,
        mcp_path: None,
        host: guard::host_policy(
            args.guard_upstream_host
                .as_deref()
                .or(file.guard_upstream_host.as_deref()),
        )?,
        identity_headers: Some(IdentityHeaders::default()),
        forwarded_headers: true,
        body_limit: DEFAULT_BODY_LIMIT,
        metadata: MetadataOptions::default(),
    };
    Ok(Some(AllInOne { path, proxy }))
}

/// Adds the all-in-one guard's resource (`<issuer origin><path>`) to the
/// configured resources, unless `--resource` already names it (then its
/// scopes win), and returns it. Refuses a path the authorization server
/// itself serves.
pub(crate) fn add_guarded_resource(
    service: &mut ServiceConfig,
    guard: &AllInOne,
) -> anyhow::Result<ResourceUri> {
    let path = guard.path.as_str();
    let paths = Paths::for_issuer(&service.issuer);
    let taken = [
        &paths.metadata,
        &paths.jwks,
        &paths.register,
        &paths.token,
        &paths.revoke,
        &paths.introspect,
        &paths.authorize,
        &paths.login,
        &paths.consent,
        &paths.account,
        &paths.account_revoke,
        &paths.logout,
        &paths.stylesheet,
    ];
    if !path.starts_with('/')
        || path.contains(['?', '#'])
        || path.starts_with("/.well-known/")
        || ["/", "/healthz", "/readyz"].contains(&path)
        || taken.iter().any(|taken| taken.as_str() == path)
    {
        anyhow::bail!(
            "--guard-path {path:?} cannot be used: it must start with / and not be a path the \
             authorization server serves itself (such as {} or {})",
            paths.token,
            paths.authorize
        );
    }
    let uri = format!("{}{path}", service.issuer_origin());
    let resource = ResourceUri::parse(&uri)
        .with_context(|| format!("the guarded resource {uri:?} is not a resource URI"))?;
    if service.resources.get(&resource).is_none() {
        let added = ConfiguredResource {
            uri: resource.clone(),
            scopes: guard::policy_scopes(&guard.proxy.policy),
            name: None,
        };
        service.resources =
            ResourceRegistry::new(service.resources.iter().cloned().chain([added]))?;
    }
    Ok(resource)
}

/// The authorization server's own public keys, handed to the all-in-one
/// guard in-process (no HTTP call to itself). Read live, so a key the
/// service reloaded is seen at the guard's next refetch; `reload_task`
/// forces one right after a reload.
#[derive(Debug)]
struct ServiceKeys(Service);

#[async_trait::async_trait]
impl KeySource for ServiceKeys {
    async fn fetch_keys(&self) -> Result<Jwks, KeySourceError> {
        serde_json::from_value(self.0.jwks())
            .map_err(|error| KeySourceError::Source(format!("the service's JWK Set: {error}")))
    }
}

/// Builds the all-in-one guard: Latchkey's own issuer, keys in-process.
pub(crate) async fn build(
    service: &Service,
    guard: &AllInOne,
    resource: ResourceUri,
) -> anyhow::Result<GuardProxy> {
    let issuer = TrustedIssuer::latchkey(service.config().issuer.clone())
        .key_source(Arc::new(ServiceKeys(service.clone())));
    let proxy = guard::build_proxy(resource, vec![issuer], None, &guard.proxy)?;
    if let Err((_, error)) = proxy.layer().validator().refresh_keys().await {
        anyhow::bail!("the guard cannot load the server's own keys: {error}");
    }
    Ok(proxy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use latchkey_protocol::scope::ScopeSet;

    #[test]
    fn the_all_in_one_guard_adds_its_resource_and_keeps_clear_of_the_server_paths() {
        let guard = |path: &str, scope: &str| AllInOne {
            path: path.to_owned(),
            proxy: ProxySettings {
                upstream: "http://127.0.0.1:3000".to_owned(),
                policy: guard::scope_policy(
                    Some(scope),
                    Vec::new(),
                    Vec::new(),
                    vec![("secret".to_owned(), ScopeSet::parse("mcp:admin").unwrap())],
                )
                .unwrap(),
                hierarchy: ScopeHierarchy::new(),
                leeway: guard::DEFAULT_LEEWAY,
                mcp_path: None,
                host: latchkey_resource::proxy::HostPolicy::Upstream,
                identity_headers: None,
                forwarded_headers: true,
                body_limit: DEFAULT_BODY_LIMIT,
                metadata: MetadataOptions::default(),
            },
        };
        let mut config = ServiceConfig::new("https://auth.example.com/tenant");
        config.resources =
            ResourceRegistry::new([
                ConfiguredResource::parse_spec("https://other.example/mcp=x").unwrap(),
            ])
            .unwrap();
        let added = add_guarded_resource(&mut config, &guard("/mcp", "mcp")).unwrap();
        assert_eq!(added.as_str(), "https://auth.example.com/mcp");
        let uris: Vec<(String, String)> = config
            .resources
            .iter()
            .map(|resource| {
                (
                    resource.uri.as_str().to_owned(),
                    resource.scopes.to_string(),
                )
            })
            .collect();
        assert_eq!(
            uris,
            [
                ("https://other.example/mcp".to_owned(), "x".to_owned()),
                (
                    "https://auth.example.com/mcp".to_owned(),
                    "mcp mcp:admin".to_owned()
                )
            ]
        );
        // Configured explicitly: its scopes win, nothing is added twice.
        let mut config = ServiceConfig::new("http://127.0.0.1:8080");
        config.resources = ResourceRegistry::new([ConfiguredResource::parse_spec(
            "http://127.0.0.1:8080/mcp=a,b",
        )
        .unwrap()])
        .unwrap();
        add_guarded_resource(&mut config, &guard("/mcp", "mcp")).unwrap();
        assert_eq!(config.resources.len(), 1);
        assert_eq!(
            config.resources.iter().next().unwrap().scopes.to_string(),
            "a b"
        );

        for taken in [
            "/tenant/token",
            "/.well-known/oauth-protected-resource",
            "/",
            "mcp",
            "/healthz",
        ] {
            let mut config = ServiceConfig::new("https://auth.example.com/tenant");
            assert!(
                add_guarded_resource(&mut config, &guard(taken, "")).is_err(),
                "{taken}"
            );
        }
    }
}
