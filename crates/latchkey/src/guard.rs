//! `latchkey guard`: the protected-resource guard as a reverse proxy in
//! front of an MCP server written in any language, and the pieces that
//! `latchkey serve --guard-upstream` (all-in-one mode) shares with it.
//!
//! The proxy itself is `latchkey_resource::proxy`; this module only turns
//! flags, `LATCHKEY_GUARD_*` environment variables and the config file's
//! `[guard]` table into a `GuardProxy`, with the usual precedence
//! **flag > environment > config file > default**. Start-up order, as for
//! `serve`: the configuration is checked, the listener bound, the trusted
//! issuers' keys fetched once (a wrong `--issuer` fails here, loudly, not at
//! the first request), and only then the summary printed on stdout, so a
//! script can wait for the `mcp:` line.
//!
//! Shutdown: on SIGINT or SIGTERM the listener stops accepting and requests
//! in flight finish; open SSE streams (which may never end) are given
//! [`SHUTDOWN_GRACE`] before the process exits anyway.

use std::io::Write as _;
use std::path::PathBuf;
use std::str::FromStr as _;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use http::{HeaderName, HeaderValue};
use latchkey_protocol::resource::ResourceUri;
use latchkey_protocol::scope::{ScopeHierarchy, ScopeSet};
use latchkey_protocol::secret::SecretString;
use latchkey_resource::proxy::{GuardProxy, HostPolicy, IdentityHeaders};
use latchkey_resource::{
    DEFAULT_BODY_LIMIT, GuardConfig, IntrospectionConfig, IntrospectionCredentials,
    IntrospectionMode, MetadataOptions, ScopePolicy, TokenValidator, TrustedIssuer,
};
use serde::Deserialize;
use url::Url;

use crate::config::{
    FileConfig, FileDuration, LogFormat, duration, format_duration, parse_duration,
};

/// The guard's listen address when none is configured.
pub(crate) const DEFAULT_GUARD_LISTEN: &str = "127.0.0.1:8090";
/// The clock-skew leeway when none is configured.
pub(crate) const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);
/// How long open requests (SSE streams) may run on after a shutdown signal.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Arguments of `latchkey guard`.
#[derive(Debug, Args)]
pub(crate) struct GuardArgs {
    /// A TOML config file; its `[guard]` table applies where neither a flag
    /// nor an environment variable is given.
    #[arg(long, env = "LATCHKEY_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Log format [default: text on a terminal, json otherwise].
    #[arg(long, env = "LATCHKEY_LOG_FORMAT", value_enum)]
    pub(crate) log_format: Option<LogFormat>,
    /// The address to listen on [default: 127.0.0.1:8090].
    #[arg(long, env = "LATCHKEY_GUARD_LISTEN", value_name = "ADDRESS")]
    pub(crate) listen: Option<String>,
    /// The MCP server to protect (http or https; with a path, every request
    /// goes to that path). Required.
    #[arg(long, env = "LATCHKEY_GUARD_UPSTREAM", value_name = "URL")]
    pub(crate) upstream: Option<String>,
    /// The public URL of the MCP endpoint, as clients use it: the audience
    /// tokens must carry and the metadata's `resource`. Required.
    #[arg(long, env = "LATCHKEY_GUARD_RESOURCE", value_name = "URL")]
    pub(crate) resource: Option<String>,
    /// The Latchkey issuer, byte-for-byte as in its metadata (listed first in
    /// `authorization_servers`). Required.
    #[arg(long, env = "LATCHKEY_GUARD_ISSUER", value_name = "URL")]
    pub(crate) issuer: Option<String>,
    /// The issuer's JWK Set URL [default: the `jwks_uri` of the issuer's
    /// RFC 8414 metadata].
    #[arg(
        long,
        alias = "jwks-url",
        env = "LATCHKEY_GUARD_JWKS_URI",
        value_name = "URL"
    )]
    pub(crate) jwks_uri: Option<String>,
    /// Another OAuth or OpenID Connect issuer whose access tokens to accept
    /// (RS256 or ES256, relaxed claims, keys discovered from its metadata).
    /// Repeatable; in the environment, separate several with spaces.
    #[arg(
        long = "trusted-issuer",
        env = "LATCHKEY_GUARD_TRUSTED_ISSUER",
        value_delimiter = ' ',
        value_name = "URL"
    )]
    pub(crate) trusted_issuers: Vec<String>,
    /// Accept tokens of the --trusted-issuer issuers typed `JWT` or untyped,
    /// as Auth0, Okta and Entra issue them [default: only `at+jwt`].
    #[arg(long, env = "LATCHKEY_GUARD_TRUSTED_ISSUER_ANY_TYP", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub(crate) trusted_issuer_any_typ: Option<bool>,
    /// The scopes every request needs, space-delimited.
    #[arg(long, env = "LATCHKEY_GUARD_SCOPE", value_name = "SCOPES")]
    pub(crate) scope: Option<String>,
    /// Scopes a path prefix adds: PREFIX=SCOPES (repeatable).
    #[arg(long = "route-scope", value_name = "PREFIX=SCOPES")]
    pub(crate) route_scopes: Vec<String>,
    /// Scopes an MCP method adds: METHOD=SCOPES, e.g. tools/call=mcp:tools (repeatable).
    #[arg(long = "method-scope", value_name = "METHOD=SCOPES")]
    pub(crate) method_scopes: Vec<String>,
    /// Scopes calling one tool adds: TOOL=SCOPES (repeatable).
    #[arg(long = "tool-scope", value_name = "TOOL=SCOPES")]
    pub(crate) tool_scopes: Vec<String>,
    /// The scope hierarchy separator: with `:`, `files` covers `files:read`.
    #[arg(long, env = "LATCHKEY_GUARD_SCOPE_SEPARATOR", value_name = "CHAR")]
    pub(crate) scope_separator: Option<char>,
    /// Clock-skew leeway for `exp`, `nbf` and `iat` [default: 60s].
    #[arg(long, env = "LATCHKEY_GUARD_LEEWAY", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) leeway: Option<Duration>,
    /// An RFC 7662 introspection endpoint, for opaque tokens (and every token
    /// with --introspect-all).
    #[arg(
        long,
        env = "LATCHKEY_GUARD_INTROSPECTION_ENDPOINT",
        value_name = "URL"
    )]
    pub(crate) introspection_endpoint: Option<String>,
    /// The client id for introspection (HTTP Basic, with --introspection-client-secret).
    #[arg(
        long,
        env = "LATCHKEY_GUARD_INTROSPECTION_CLIENT_ID",
        value_name = "ID"
    )]
    pub(crate) introspection_client_id: Option<String>,
    /// The client secret for introspection.
    #[arg(
        long,
        env = "LATCHKEY_GUARD_INTROSPECTION_CLIENT_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub(crate) introspection_client_secret: Option<String>,
    /// A bearer secret for introspection (Latchkey's --introspection-secret).
    #[arg(
        long,
        env = "LATCHKEY_GUARD_INTROSPECTION_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub(crate) introspection_secret: Option<String>,
    /// Introspect JWTs too, so a revocation takes effect at once.
    #[arg(long, env = "LATCHKEY_GUARD_INTROSPECT_ALL", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub(crate) introspect_all: Option<bool>,
    #[command(flatten)]
    pub(crate) proxy: ProxyArgs,
}

/// The proxy settings `latchkey guard` has and `serve --guard-upstream`
/// reads from its own flags.
#[derive(Debug, Args)]
pub(crate) struct ProxyArgs {
    /// Serve the MCP endpoint at this path [default: the resource's path].
    #[arg(long, env = "LATCHKEY_GUARD_MCP_PATH", value_name = "PATH")]
    pub(crate) mcp_path: Option<String>,
    /// The `Host` sent upstream: `upstream` (its own authority, what MCP
    /// servers with DNS-rebinding protection expect), `preserve` (the
    /// client's) or a fixed HOST[:PORT] [default: upstream].
    #[arg(
        long,
        env = "LATCHKEY_GUARD_UPSTREAM_HOST",
        value_name = "upstream|preserve|HOST"
    )]
    pub(crate) upstream_host: Option<String>,
    /// Send no identity headers upstream.
    #[arg(long, env = "LATCHKEY_GUARD_NO_IDENTITY_HEADERS", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub(crate) no_identity_headers: Option<bool>,
    /// The header carrying the subject upstream [default: X-Latchkey-Subject].
    #[arg(
        long,
        env = "LATCHKEY_GUARD_IDENTITY_HEADER_SUBJECT",
        value_name = "NAME"
    )]
    pub(crate) identity_header_subject: Option<String>,
    /// The header carrying the client id upstream [default: X-Latchkey-Client-Id].
    #[arg(
        long,
        env = "LATCHKEY_GUARD_IDENTITY_HEADER_CLIENT_ID",
        value_name = "NAME"
    )]
    pub(crate) identity_header_client_id: Option<String>,
    /// The header carrying the granted scopes upstream [default: X-Latchkey-Scope].
    #[arg(
        long,
        env = "LATCHKEY_GUARD_IDENTITY_HEADER_SCOPE",
        value_name = "NAME"
    )]
    pub(crate) identity_header_scope: Option<String>,
    /// The header carrying the issuer upstream [default: X-Latchkey-Issuer].
    #[arg(
        long,
        env = "LATCHKEY_GUARD_IDENTITY_HEADER_ISSUER",
        value_name = "NAME"
    )]
    pub(crate) identity_header_issuer: Option<String>,
    /// Do not send X-Forwarded-For, -Proto and -Host upstream.
    #[arg(long, env = "LATCHKEY_GUARD_NO_FORWARDED_HEADERS", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub(crate) no_forwarded_headers: Option<bool>,
    /// The largest POST body read for --method-scope/--tool-scope rules, in
    /// bytes (413 beyond) [default: 1048576].
    #[arg(long, env = "LATCHKEY_GUARD_BODY_LIMIT", value_name = "BYTES")]
    pub(crate) body_limit: Option<usize>,
    /// `resource_name` of the protected resource metadata.
    #[arg(long, env = "LATCHKEY_GUARD_RESOURCE_NAME", value_name = "TEXT")]
    pub(crate) resource_name: Option<String>,
    /// `resource_documentation` of the protected resource metadata.
    #[arg(
        long,
        env = "LATCHKEY_GUARD_RESOURCE_DOCUMENTATION",
        value_name = "URL"
    )]
    pub(crate) resource_documentation: Option<String>,
}

/// The config file's `[guard]` table: the flag names with `_` for `-`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileGuard {
    pub(crate) listen: Option<String>,
    pub(crate) upstream: Option<String>,
    pub(crate) resource: Option<String>,
    pub(crate) issuer: Option<String>,
    pub(crate) jwks_uri: Option<String>,
    #[serde(default)]
    pub(crate) trusted_issuers: Vec<String>,
    pub(crate) trusted_issuer_any_typ: Option<bool>,
    pub(crate) scope: Option<String>,
    /// Path prefix = scopes.
    #[serde(default)]
    pub(crate) route_scopes: std::collections::BTreeMap<String, String>,
    /// MCP method = scopes.
    #[serde(default)]
    pub(crate) method_scopes: std::collections::BTreeMap<String, String>,
    /// Tool name = scopes.
    #[serde(default)]
    pub(crate) tool_scopes: std::collections::BTreeMap<String, String>,
    pub(crate) scope_separator: Option<char>,
    pub(crate) leeway: Option<FileDuration>,
    pub(crate) introspection_endpoint: Option<String>,
    pub(crate) introspection_client_id: Option<String>,
    pub(crate) introspection_client_secret: Option<String>,
    pub(crate) introspection_secret: Option<String>,
    pub(crate) introspect_all: Option<bool>,
    pub(crate) mcp_path: Option<String>,
    pub(crate) upstream_host: Option<String>,
    pub(crate) no_identity_headers: Option<bool>,
    pub(crate) identity_header_subject: Option<String>,
    pub(crate) identity_header_client_id: Option<String>,
    pub(crate) identity_header_scope: Option<String>,
    pub(crate) identity_header_issuer: Option<String>,
    pub(crate) no_forwarded_headers: Option<bool>,
    pub(crate) body_limit: Option<usize>,
    pub(crate) resource_name: Option<String>,
    pub(crate) resource_documentation: Option<String>,
}

/// Parses `KEY=SCOPES` specs (scopes space- or comma-delimited) into pairs.
fn scope_specs<'a>(flag: &str, specs: &'a [String]) -> anyhow::Result<Vec<(&'a str, ScopeSet)>> {
    specs
        .iter()
        .map(|spec| {
            let (key, scopes) = spec
                .split_once('=')
                .with_context(|| format!("--{flag} {spec:?} is not KEY=SCOPES"))?;
            Ok((key.trim(), parse_scopes(flag, scopes)?))
        })
        .collect()
}

/// A scope list, space- or comma-delimited.
fn parse_scopes(what: &str, scopes: &str) -> anyhow::Result<ScopeSet> {
    let normalised = scopes.replace(',', " ");
    let joined = normalised.split_whitespace().collect::<Vec<_>>().join(" ");
    if joined.is_empty() {
        return Ok(ScopeSet::new());
    }
    ScopeSet::parse(&joined).with_context(|| format!("{what}: {scopes:?} is not a scope list"))
}

/// Pairs from flags, or else the file's table.
pub(crate) fn pick_specs(
    flag: &str,
    args: &[String],
    file: &std::collections::BTreeMap<String, String>,
) -> anyhow::Result<Vec<(String, ScopeSet)>> {
    if args.is_empty() {
        file.iter()
            .map(|(key, scopes)| Ok((key.clone(), parse_scopes(flag, scopes)?)))
            .collect()
    } else {
        Ok(scope_specs(flag, args)?
            .into_iter()
            .map(|(key, scopes)| (key.to_owned(), scopes))
            .collect())
    }
}

/// Builds a scope policy from its parts.
pub(crate) fn scope_policy(
    default: Option<&str>,
    routes: Vec<(String, ScopeSet)>,
    methods: Vec<(String, ScopeSet)>,
    tools: Vec<(String, ScopeSet)>,
) -> anyhow::Result<ScopePolicy> {
    let mut policy = ScopePolicy::new(parse_scopes("--scope", default.unwrap_or_default())?);
    for (prefix, scopes) in routes {
        if !prefix.starts_with('/') {
            anyhow::bail!("--route-scope prefix {prefix:?} must start with /");
        }
        policy = policy.route(prefix, scopes);
    }
    for (method, scopes) in methods {
        policy = policy.mcp_method(method, scopes);
    }
    for (tool, scopes) in tools {
        policy = policy.tool(tool, scopes);
    }
    Ok(policy)
}

/// Every scope the policy can ask for: what the authorization server must
/// let clients request for this resource.
pub(crate) fn policy_scopes(policy: &ScopePolicy) -> ScopeSet {
    let mut all = policy.default.clone();
    for (_, scopes) in &policy.per_route {
        all = all.union(scopes);
    }
    // Sorted, so the resource's scopes read the same on every start.
    let mut extra: Vec<(&String, &ScopeSet)> = policy.per_mcp_method.iter().collect();
    extra.sort_by(|left, right| left.0.cmp(right.0));
    let mut tools: Vec<(&String, &ScopeSet)> = policy.per_tool.iter().collect();
    tools.sort_by(|left, right| left.0.cmp(right.0));
    for (_, scopes) in extra.into_iter().chain(tools) {
        all = all.union(scopes);
    }
    all
}

/// Parses the `Host` policy: `upstream`, `preserve` or a fixed value.
pub(crate) fn host_policy(value: Option<&str>) -> anyhow::Result<HostPolicy> {
    match value.map(str::trim) {
        None | Some("" | "upstream") => Ok(HostPolicy::Upstream),
        Some("preserve") => Ok(HostPolicy::Preserve),
        Some(fixed) => {
            if fixed.contains(['/', ' ', '@']) {
                anyhow::bail!("--upstream-host {fixed:?} is not upstream, preserve or HOST[:PORT]");
            }
            Ok(HostPolicy::Fixed(
                HeaderValue::from_str(fixed).with_context(|| {
                    format!("--upstream-host {fixed:?} is not a valid Host value")
                })?,
            ))
        }
    }
}

/// A header name for an identity header.
fn header_name(
    flag: &str,
    value: Option<&String>,
    default: &HeaderName,
) -> anyhow::Result<HeaderName> {
    match value {
        None => Ok(default.clone()),
        Some(name) => HeaderName::from_str(name.trim())
            .with_context(|| format!("--{flag} {name:?} is not a header name")),
    }
}

/// Everything about the proxy except the validator, resolved.
#[derive(Debug, Clone)]
pub(crate) struct ProxySettings {
    pub(crate) upstream: String,
    pub(crate) policy: ScopePolicy,
    pub(crate) hierarchy: ScopeHierarchy,
    pub(crate) leeway: Duration,
    pub(crate) mcp_path: Option<String>,
    pub(crate) host: HostPolicy,
    pub(crate) identity_headers: Option<IdentityHeaders>,
    pub(crate) forwarded_headers: bool,
    pub(crate) body_limit: usize,
    pub(crate) metadata: MetadataOptions,
}

impl ProxyArgs {
    /// Resolves the proxy settings (flags, then the `[guard]` table).
    fn resolve(
        &self,
        file: &FileGuard,
        upstream: String,
        policy: ScopePolicy,
        hierarchy: ScopeHierarchy,
        leeway: Duration,
    ) -> anyhow::Result<ProxySettings> {
        let identity_headers = if self
            .no_identity_headers
            .or(file.no_identity_headers)
            .unwrap_or(false)
        {
            None
        } else {
            let defaults = IdentityHeaders::default();
            Some(IdentityHeaders {
                subject: header_name(
                    "identity-header-subject",
                    self.identity_header_subject
                        .as_ref()
                        .or(file.identity_header_subject.as_ref()),
                    &defaults.subject,
                )?,
                client_id: header_name(
                    "identity-header-client-id",
                    self.identity_header_client_id
                        .as_ref()
                        .or(file.identity_header_client_id.as_ref()),
                    &defaults.client_id,
                )?,
                scope: header_name(
                    "identity-header-scope",
                    self.identity_header_scope
                        .as_ref()
                        .or(file.identity_header_scope.as_ref()),
                    &defaults.scope,
                )?,
                issuer: header_name(
                    "identity-header-issuer",
                    self.identity_header_issuer
                        .as_ref()
                        .or(file.identity_header_issuer.as_ref()),
                    &defaults.issuer,
                )?,
            })
        };
        Ok(ProxySettings {
            upstream,
            policy,
            hierarchy,
            leeway,
            mcp_path: self.mcp_path.clone().or_else(|| file.mcp_path.clone()),
            host: host_policy(
                self.upstream_host
                    .as_deref()
                    .or(file.upstream_host.as_deref()),
            )?,
            identity_headers,
            forwarded_headers: !self
                .no_forwarded_headers
                .or(file.no_forwarded_headers)
                .unwrap_or(false),
            body_limit: self
                .body_limit
                .or(file.body_limit)
                .unwrap_or(DEFAULT_BODY_LIMIT),
            metadata: MetadataOptions {
                resource_name: self
                    .resource_name
                    .clone()
                    .or_else(|| file.resource_name.clone()),
                resource_documentation: self
                    .resource_documentation
                    .clone()
                    .or_else(|| file.resource_documentation.clone()),
                scopes_supported: None,
            },
        })
    }
}

/// Builds the proxy for `resource`, trusting `issuers` (Latchkey first).
pub(crate) fn build_proxy(
    resource: ResourceUri,
    issuers: Vec<TrustedIssuer>,
    introspection: Option<IntrospectionConfig>,
    settings: &ProxySettings,
) -> anyhow::Result<GuardProxy> {
    let mut builder = TokenValidator::builder(resource)
        .leeway(settings.leeway)
        .scope_hierarchy(settings.hierarchy.clone());
    for issuer in issuers {
        builder = builder.trust(issuer);
    }
    if let Some(introspection) = introspection {
        builder = builder.introspection(introspection);
    }
    let validator = builder.build().context("invalid guard configuration")?;
    let guard = GuardConfig::new(validator)
        .scope_policy(settings.policy.clone())
        .metadata(settings.metadata.clone())
        .body_limit(settings.body_limit);
    let mut proxy = GuardProxy::builder(settings.upstream.clone(), guard)
        .identity_headers(settings.identity_headers.clone())
        .host_policy(settings.host.clone())
        .forwarded_headers(settings.forwarded_headers);
    if let Some(path) = &settings.mcp_path {
        proxy = proxy.mcp_path(path.clone());
    }
    proxy.build().context("invalid guard configuration")
}

/// `latchkey guard`, resolved.
#[derive(Debug)]
struct GuardSettings {
    listen: String,
    resource: ResourceUri,
    issuers: Vec<TrustedIssuer>,
    introspection: Option<IntrospectionConfig>,
    proxy: ProxySettings,
}

impl GuardArgs {
    fn settings(&self, file: &FileConfig) -> anyhow::Result<GuardSettings> {
        let table = file.guard.clone().unwrap_or_default();
        let required = |arg: &Option<String>, value: &Option<String>, flag: &str| {
            arg.clone()
                .or_else(|| value.clone())
                .filter(|value| !value.trim().is_empty())
                .with_context(|| {
                    format!(
                        "--{flag} is required (or LATCHKEY_GUARD_{}, or `{}` in the config file's [guard] table)",
                        flag.to_uppercase().replace('-', "_"),
                        flag.replace('-', "_")
                    )
                })
        };
        let upstream = required(&self.upstream, &table.upstream, "upstream")?;
        let resource_text = required(&self.resource, &table.resource, "resource")?;
        let resource = ResourceUri::parse(resource_text.trim())
            .with_context(|| format!("--resource {resource_text:?} is not a resource URI"))?;
        let issuer = required(&self.issuer, &table.issuer, "issuer")?;

        let mut latchkey = TrustedIssuer::latchkey(issuer.clone());
        if let Some(jwks_uri) = self.jwks_uri.clone().or_else(|| table.jwks_uri.clone()) {
            latchkey = latchkey.jwks_uri(
                Url::parse(&jwks_uri)
                    .with_context(|| format!("--jwks-uri {jwks_uri:?} is not a URL"))?,
            );
        }
        let any_typ = self
            .trusted_issuer_any_typ
            .or(table.trusted_issuer_any_typ)
            .unwrap_or(false);
        let externals: Vec<String> = if self.trusted_issuers.iter().any(|i| !i.trim().is_empty()) {
            self.trusted_issuers.clone()
        } else {
            table.trusted_issuers.clone()
        };
        let mut issuers = vec![latchkey];
        for external in externals.iter().filter(|issuer| !issuer.trim().is_empty()) {
            let trusted = TrustedIssuer::external(external.trim());
            issuers.push(if any_typ {
                trusted.require_typ(None)
            } else {
                trusted
            });
        }

        let introspection = self.introspection(&table)?;
        let policy = scope_policy(
            self.scope.as_deref().or(table.scope.as_deref()),
            pick_specs("route-scope", &self.route_scopes, &table.route_scopes)?,
            pick_specs("method-scope", &self.method_scopes, &table.method_scopes)?,
            pick_specs("tool-scope", &self.tool_scopes, &table.tool_scopes)?,
        )?;
        let hierarchy = match self.scope_separator.or(table.scope_separator) {
            Some(separator) => ScopeHierarchy::new().with_separator(separator),
            None => ScopeHierarchy::new(),
        };
        let leeway = duration(
            self.leeway,
            table.leeway.as_ref(),
            "guard.leeway",
            DEFAULT_LEEWAY,
        )?;
        let proxy = self
            .proxy
            .resolve(&table, upstream, policy, hierarchy, leeway)?;
        Ok(GuardSettings {
            listen: self
                .listen
                .clone()
                .or_else(|| table.listen.clone())
                .unwrap_or_else(|| DEFAULT_GUARD_LISTEN.to_owned()),
            resource,
            issuers,
            introspection,
            proxy,
        })
    }

    fn introspection(&self, table: &FileGuard) -> anyhow::Result<Option<IntrospectionConfig>> {
        let Some(endpoint) = self
            .introspection_endpoint
            .clone()
            .or_else(|| table.introspection_endpoint.clone())
        else {
            return Ok(None);
        };
        let endpoint = Url::parse(&endpoint)
            .with_context(|| format!("--introspection-endpoint {endpoint:?} is not a URL"))?;
        let client_id = self
            .introspection_client_id
            .clone()
            .or_else(|| table.introspection_client_id.clone());
        let client_secret = self
            .introspection_client_secret
            .clone()
            .or_else(|| table.introspection_client_secret.clone());
        let bearer = self
            .introspection_secret
            .clone()
            .or_else(|| table.introspection_secret.clone());
        let credentials = match (client_id, client_secret, bearer) {
            (Some(client_id), Some(secret), None) => IntrospectionCredentials::ClientSecretBasic {
                client_id,
                client_secret: SecretString::new(secret.as_str()),
            },
            (None, None, Some(secret)) => {
                IntrospectionCredentials::Bearer(SecretString::new(secret.as_str()))
            }
            _ => anyhow::bail!(
                "--introspection-endpoint needs either --introspection-client-id with \
                 --introspection-client-secret, or --introspection-secret"
            ),
        };
        let mode = if self
            .introspect_all
            .or(table.introspect_all)
            .unwrap_or(false)
        {
            IntrospectionMode::AllTokens
        } else {
            IntrospectionMode::OpaqueTokens
        };
        Ok(Some(
            IntrospectionConfig::new(endpoint, credentials).mode(mode),
        ))
    }
}

/// Describes the `Host` policy for the summary.
pub(crate) fn describe_host(policy: &HostPolicy) -> String {
    match policy {
        HostPolicy::Upstream => "the upstream's own authority".to_owned(),
        HostPolicy::Preserve => "the client's".to_owned(),
        HostPolicy::Fixed(value) => format!("{value:?}"),
    }
}

/// Describes the scope policy for the summary.
pub(crate) fn describe_policy(policy: &ScopePolicy) -> String {
    let mut parts = Vec::new();
    parts.push(if policy.default.is_empty() {
        "no scope needed by default".to_owned()
    } else {
        format!("{} on every request", policy.default)
    });
    for (prefix, scopes) in &policy.per_route {
        parts.push(format!("{scopes} under {prefix}"));
    }
    let mut methods: Vec<_> = policy.per_mcp_method.iter().collect();
    methods.sort_by(|left, right| left.0.cmp(right.0));
    for (method, scopes) in methods {
        parts.push(format!("{scopes} for {method}"));
    }
    let mut tools: Vec<_> = policy.per_tool.iter().collect();
    tools.sort_by(|left, right| left.0.cmp(right.0));
    for (tool, scopes) in tools {
        parts.push(format!("{scopes} for tool {tool}"));
    }
    parts.join("; ")
}

/// Runs `latchkey guard`.
pub(crate) async fn run(args: &GuardArgs) -> anyhow::Result<()> {
    let file = FileConfig::load(args.config.as_deref())?;
    crate::logging::init(args.log_format.or(file.log_format));
    let settings = args.settings(&file)?;

    let listener = tokio::net::TcpListener::bind(&settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let bound = listener
        .local_addr()
        .context("the listener has no address")?;
    let issuer_names: Vec<String> = settings
        .issuers
        .iter()
        .map(|issuer| issuer.issuer().to_owned())
        .collect();
    let proxy = build_proxy(
        settings.resource.clone(),
        settings.issuers,
        settings.introspection,
        &settings.proxy,
    )?;
    // Fail fast on a wrong --issuer; another trusted issuer being down only
    // warns (its keys are fetched again at its first token).
    if let Err((issuer, error)) = proxy.layer().validator().refresh_keys().await {
        if issuer_names.first() == Some(&issuer) {
            anyhow::bail!(
                "cannot load the signing keys of {issuer}: {error}. Is the authorization server \
                 running, and is --issuer exactly its issuer (or --jwks-uri its JWK Set)?"
            );
        }
        tracing::warn!(%issuer, %error, "cannot load this trusted issuer's keys yet");
    }

    let shutdown = crate::serve::shutdown_signal()?;
    let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        let _ = stopping.send(());
    };
    print_guard_summary(
        &proxy,
        &settings.proxy,
        &issuer_names,
        &settings.resource,
        bound,
    )?;
    tracing::info!(address = %bound, resource = %settings.resource.as_str(), "guard listening");
    let serving = latchkey_resource::proxy::serve(listener, proxy, signal);
    tokio::pin!(serving);
    let served = tokio::select! {
        served = &mut serving => served,
        () = async {
            if stopped.await.is_err() {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {
            tracing::warn!(grace = %format_duration(SHUTDOWN_GRACE), "open streams did not end in time; stopping anyway");
            Ok(())
        }
    };
    served.context("the guard stopped with an error")?;
    tracing::info!("stopped");
    Ok(())
}

/// Prints what the guard protects and where, on stdout.
fn print_guard_summary(
    proxy: &GuardProxy,
    settings: &ProxySettings,
    issuers: &[String],
    resource: &ResourceUri,
    bound: std::net::SocketAddr,
) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "Latchkey guard is protecting an MCP server")?;
    writeln!(out, "  resource:   {}", resource.as_str())?;
    writeln!(out, "  listening:  http://{bound}{}", proxy.mcp_path())?;
    writeln!(out, "  metadata:   {}", proxy.layer().metadata_url())?;
    for issuer in issuers {
        writeln!(out, "  issuer:     {issuer}")?;
    }
    writeln!(out, "  upstream:   {}", settings.upstream)?;
    writeln!(
        out,
        "  host:       {} (the Host header sent upstream)",
        describe_host(&settings.host)
    )?;
    writeln!(out, "  scopes:     {}", describe_policy(&settings.policy))?;
    writeln!(out, "  leeway:     {}", format_duration(settings.leeway))?;
    match &settings.identity_headers {
        Some(headers) => writeln!(
            out,
            "  identity:   {}, {}, {}, {}",
            headers.subject, headers.client_id, headers.scope, headers.issuer
        )?,
        None => writeln!(out, "  identity:   not sent upstream")?,
    }
    writeln!(out, "  mcp:        http://{bound}{}", proxy.mcp_path())?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(upstream: Option<&str>) -> GuardArgs {
        GuardArgs {
            config: None,
            log_format: None,
            listen: None,
            upstream: upstream.map(str::to_owned),
            resource: Some("https://MCP.example.com/mcp".to_owned()),
            issuer: Some("https://auth.example.com".to_owned()),
            jwks_uri: None,
            trusted_issuers: Vec::new(),
            trusted_issuer_any_typ: None,
            scope: None,
            route_scopes: Vec::new(),
            method_scopes: vec!["tools/call=mcp:tools".to_owned()],
            tool_scopes: Vec::new(),
            scope_separator: None,
            leeway: None,
            introspection_endpoint: None,
            introspection_client_id: None,
            introspection_client_secret: None,
            introspection_secret: None,
            introspect_all: None,
            proxy: ProxyArgs {
                mcp_path: None,
                upstream_host: None,
                no_identity_headers: None,
                identity_header_subject: Some("X-User".to_owned()),
                identity_header_client_id: None,
                identity_header_scope: None,
                identity_header_issuer: None,
                no_forwarded_headers: None,
                body_limit: None,
                resource_name: None,
                resource_documentation: None,
            },
        }
    }

    #[test]
    fn flags_win_over_the_guard_table_and_it_over_defaults() {
        let file: FileConfig = toml::from_str(
            r#"
            [guard]
            upstream = "http://127.0.0.1:3000"
            listen = "127.0.0.1:9999"
            scope = "mcp"
            leeway = "5s"
            upstream_host = "preserve"
            trusted_issuers = ["https://tenant.idp.example/"]
            trusted_issuer_any_typ = true
            no_forwarded_headers = true
            [guard.method_scopes]
            "tools/list" = "mcp:list"
            [guard.tool_scopes]
            delete = "admin"
            "#,
        )
        .unwrap();
        let settings = args(None).settings(&file).unwrap();
        assert_eq!(settings.listen, "127.0.0.1:9999");
        assert_eq!(settings.resource.as_str(), "https://mcp.example.com/mcp");
        assert_eq!(settings.proxy.upstream, "http://127.0.0.1:3000");
        assert_eq!(settings.proxy.leeway, Duration::from_secs(5));
        assert_eq!(settings.proxy.host, HostPolicy::Preserve);
        assert!(!settings.proxy.forwarded_headers);
        assert_eq!(settings.proxy.policy.default.to_string(), "mcp");
        // The flag's method rules replace the file's whole table.
        assert_eq!(
            settings.proxy.policy.per_mcp_method["tools/call"].to_string(),
            "mcp:tools"
        );
        assert!(
            !settings
                .proxy
                .policy
                .per_mcp_method
                .contains_key("tools/list")
        );
        assert_eq!(
            settings.proxy.policy.per_tool["delete"].to_string(),
            "admin"
        );
        assert_eq!(
            policy_scopes(&settings.proxy.policy).to_string(),
            "mcp mcp:tools admin"
        );
        let headers = settings.proxy.identity_headers.unwrap();
        assert_eq!(headers.subject, "x-user");
        assert_eq!(headers.issuer, "x-latchkey-issuer");
        let issuers: Vec<&str> = settings.issuers.iter().map(TrustedIssuer::issuer).collect();
        assert_eq!(
            issuers,
            ["https://auth.example.com", "https://tenant.idp.example/"]
        );

        let settings = args(Some("http://127.0.0.1:4000"))
            .settings(&FileConfig::default())
            .unwrap();
        assert_eq!(settings.listen, DEFAULT_GUARD_LISTEN);
        assert_eq!(settings.proxy.upstream, "http://127.0.0.1:4000");
        assert_eq!(settings.proxy.leeway, DEFAULT_LEEWAY);
        assert_eq!(settings.proxy.host, HostPolicy::Upstream);
        assert!(settings.proxy.forwarded_headers);
        assert!(settings.introspection.is_none());
    }

    #[test]
    fn missing_and_malformed_settings_are_named() {
        let error = args(None)
            .settings(&FileConfig::default())
            .unwrap_err()
            .to_string();
        assert!(error.contains("--upstream is required"), "{error}");
        assert!(error.contains("LATCHKEY_GUARD_UPSTREAM"), "{error}");

        let mut bad = args(Some("http://127.0.0.1:3000"));
        bad.method_scopes = vec!["tools/call".to_owned()];
        assert!(
            bad.settings(&FileConfig::default())
                .unwrap_err()
                .to_string()
                .contains("KEY=SCOPES")
        );

        let mut bad = args(Some("http://127.0.0.1:3000"));
        bad.introspection_endpoint = Some("https://auth.example.com/introspect".to_owned());
        bad.introspection_client_id = Some("rs".to_owned());
        assert!(
            bad.settings(&FileConfig::default())
                .unwrap_err()
                .to_string()
                .contains("--introspection-client-secret")
        );

        let typo = toml::from_str::<FileConfig>("[guard]\nupstrem = \"x\"").unwrap_err();
        assert!(typo.to_string().contains("upstrem"), "{typo}");
    }

    #[test]
    fn host_policies_parse() {
        assert_eq!(host_policy(None).unwrap(), HostPolicy::Upstream);
        assert_eq!(host_policy(Some("upstream")).unwrap(), HostPolicy::Upstream);
        assert_eq!(host_policy(Some("preserve")).unwrap(), HostPolicy::Preserve);
        assert_eq!(
            host_policy(Some("mcp.internal:3000")).unwrap(),
            HostPolicy::Fixed(HeaderValue::from_static("mcp.internal:3000"))
        );
        assert!(host_policy(Some("http://x/")).is_err());
    }

    #[test]
    fn scope_lists_accept_commas_and_spaces() {
        assert_eq!(parse_scopes("x", "a, b c").unwrap().to_string(), "a b c");
        assert!(parse_scopes("x", "").unwrap().is_empty());
        assert!(parse_scopes("x", "a\"b").is_err());
    }
}
