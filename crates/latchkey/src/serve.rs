//! `latchkey serve`: resolve the configuration, open the store, load or
//! create the signing keys, serve HTTP until SIGINT or SIGTERM, and run the
//! clean-up and key-reload tasks alongside.
//!
//! Start-up order matters for clear failures: the configuration is
//! validated first (nothing touched yet), then the listener is bound (so
//! an issuer derived from `--listen 127.0.0.1:0` names the real port),
//! then the store is opened and migrated, then the keys are loaded (a wrong
//! server secret stops here with a message naming the cause). Only then is
//! the summary printed, on stdout, so a script can wait for the `issuer:`
//! line and know the server is accepting connections.
//!
//! Shutdown: on SIGINT or SIGTERM the listener stops accepting, requests
//! in flight finish, the background tasks stop, and the process exits 0.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use latchkey_http::{AppState, HttpConfig, Paths, router};
use latchkey_protocol::secret::SecretString;
use latchkey_resource::TokenValidator;
use latchkey_resource::proxy::GuardProxy;
use latchkey_service::config::{
    ConfiguredResource, DEFAULT_CONSENT_TTL, Lifetimes, LoginRateLimits, MetadataDocumentSettings,
    RateLimitSettings, RegistrationPolicy, ResourceRegistry, ServiceConfig, SessionSettings,
    SigningAlgorithm,
};
use latchkey_service::{Service, SystemClock};
use tokio::sync::watch;

use crate::all_in_one;
use crate::config::{
    CommonArgs, DEFAULT_LISTEN, FileConfig, SigningArgs, duration, format_duration, parse_duration,
};
use crate::guard;
use crate::secret::{SecretSource, load_or_generate};
use crate::store::DatabaseUrl;
use crate::upstream::UpstreamArgs;

/// Arguments of `latchkey serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    pub(crate) common: CommonArgs,
    #[command(flatten)]
    pub(crate) signing: SigningArgs,
    /// The address to listen on; port 0 picks a free port [default: 127.0.0.1:8080].
    #[arg(long, env = "LATCHKEY_LISTEN", value_name = "ADDRESS")]
    pub(crate) listen: Option<String>,
    /// The issuer identifier, exactly as clients will see it: https://host[/path]
    /// (http only on loopback) [default: http://<listen address>, for development].
    #[arg(long, env = "LATCHKEY_ISSUER", value_name = "URL")]
    pub(crate) issuer: Option<String>,
    /// A protected resource (MCP server) to issue tokens for, with the scopes
    /// clients may request: URL[=scope1,scope2]. Repeatable; in the
    /// environment, separate several with spaces.
    #[arg(
        long = "resource",
        env = "LATCHKEY_RESOURCE",
        value_delimiter = ' ',
        value_name = "URL[=SCOPES]"
    )]
    pub(crate) resources: Vec<String>,
    /// Whether token requests must name a resource (RFC 8707) [default: true].
    #[arg(long, env = "LATCHKEY_REQUIRE_RESOURCE", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub(crate) require_resource: Option<bool>,
    /// Authorization-code lifetime [default: 60s].
    #[arg(long, env = "LATCHKEY_CODE_TTL", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) code_ttl: Option<Duration>,
    /// Refresh-token lifetime unless rotated first [default: 30d].
    #[arg(long, env = "LATCHKEY_REFRESH_IDLE_TTL", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) refresh_idle_ttl: Option<Duration>,
    /// Lifetime of a refresh-token family however often it rotates [default: 90d].
    #[arg(long, env = "LATCHKEY_REFRESH_ABSOLUTE_TTL", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) refresh_absolute_ttl: Option<Duration>,
    /// Dynamic client registration: open, token or closed [default: open].
    #[arg(long, env = "LATCHKEY_REGISTRATION", value_name = "POLICY")]
    pub(crate) registration: Option<String>,
    /// The initial access token registration requires under `--registration token`.
    #[arg(
        long,
        env = "LATCHKEY_INITIAL_ACCESS_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub(crate) initial_access_token: Option<String>,
    /// Registrations allowed per client address per hour; 0 disables the limit [default: 20].
    #[arg(long, env = "LATCHKEY_REGISTRATION_RATE_LIMIT", value_name = "COUNT")]
    pub(crate) registration_rate_limit: Option<u32>,
    /// A secret that lets resource servers introspect any token
    /// (Authorization: Bearer <secret>).
    #[arg(
        long,
        env = "LATCHKEY_INTROSPECTION_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub(crate) introspection_secret: Option<String>,
    /// How long client records are cached in memory; 0 disables [default: 30s].
    #[arg(long, env = "LATCHKEY_CLIENT_CACHE_TTL", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) client_cache_ttl: Option<Duration>,
    /// How often expired codes, tokens and keys are deleted [default: 5m].
    #[arg(long, env = "LATCHKEY_CLEANUP_INTERVAL", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) cleanup_interval: Option<Duration>,
    /// Take the client address for rate limits from the last X-Forwarded-For
    /// entry. Only behind a proxy that sets it: otherwise clients can forge it.
    #[arg(long, env = "LATCHKEY_TRUST_FORWARDED_FOR", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub(crate) trust_forwarded_for: Option<bool>,
    /// A directory whose files replace the built-in page templates of the same
    /// names (base.html, login.html, consent.html, account.html, error.html,
    /// logged_out.html) and the stylesheet (latchkey.css).
    #[arg(long, env = "LATCHKEY_TEMPLATES_DIR", value_name = "DIR")]
    pub(crate) templates_dir: Option<PathBuf>,
    /// A browser session ends after this long without use [default: 1h].
    #[arg(long, env = "LATCHKEY_SESSION_IDLE_TTL", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) session_idle_ttl: Option<Duration>,
    /// A browser session ends this long after sign-in, however active [default: 12h].
    #[arg(long, env = "LATCHKEY_SESSION_ABSOLUTE_TTL", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) session_absolute_ttl: Option<Duration>,
    /// How long a user's approval of an app is remembered [default: 30d].
    #[arg(long, env = "LATCHKEY_CONSENT_TTL", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) consent_ttl: Option<Duration>,
    /// Failed sign-ins allowed per account per 15 minutes; 0 disables [default: 5].
    #[arg(long, env = "LATCHKEY_LOGIN_RATE_LIMIT", value_name = "COUNT")]
    pub(crate) login_rate_limit: Option<u32>,
    /// Failed sign-ins allowed per client address per 15 minutes; 0 disables [default: 30].
    #[arg(long, env = "LATCHKEY_LOGIN_ADDRESS_RATE_LIMIT", value_name = "COUNT")]
    pub(crate) login_address_rate_limit: Option<u32>,
    /// How the consent page describes a scope: SCOPE=TEXT (repeatable; adds to and
    /// overrides the config file's [scopes] table).
    #[arg(long = "scope-description", value_name = "SCOPE=TEXT")]
    pub(crate) scope_descriptions: Vec<String>,
    /// All-in-one mode: also guard this MCP server (http or https URL) on the
    /// same listener, at <issuer origin><--guard-path>, which is added to the
    /// resources. The same LATCHKEY_GUARD_* variables configure `latchkey guard`.
    #[arg(long, env = "LATCHKEY_GUARD_UPSTREAM", value_name = "URL")]
    pub(crate) guard_upstream: Option<String>,
    /// The path of the guarded MCP endpoint in all-in-one mode [default: /mcp].
    #[arg(long, env = "LATCHKEY_GUARD_PATH", value_name = "PATH")]
    pub(crate) guard_path: Option<String>,
    /// The scopes every request to the guarded MCP endpoint needs, space-delimited.
    #[arg(long, env = "LATCHKEY_GUARD_SCOPE", value_name = "SCOPES")]
    pub(crate) guard_scope: Option<String>,
    /// Scopes an MCP method adds in all-in-one mode: METHOD=SCOPES (repeatable).
    #[arg(long = "guard-method-scope", value_name = "METHOD=SCOPES")]
    pub(crate) guard_method_scopes: Vec<String>,
    /// Scopes calling one tool adds in all-in-one mode: TOOL=SCOPES (repeatable).
    #[arg(long = "guard-tool-scope", value_name = "TOOL=SCOPES")]
    pub(crate) guard_tool_scopes: Vec<String>,
    /// The `Host` sent to the guarded MCP server: upstream, preserve or
    /// HOST[:PORT] [default: upstream].
    #[arg(
        long,
        env = "LATCHKEY_GUARD_UPSTREAM_HOST",
        value_name = "upstream|preserve|HOST"
    )]
    pub(crate) guard_upstream_host: Option<String>,
    /// The guard's clock-skew leeway in all-in-one mode [default: 60s].
    #[arg(long, env = "LATCHKEY_GUARD_LEEWAY", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) guard_leeway: Option<Duration>,
    /// Deadline for fetching a client metadata document, connect to last byte [default: 5s].
    #[arg(long, env = "LATCHKEY_METADATA_DOCUMENT_TIMEOUT", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) metadata_document_timeout: Option<Duration>,
    /// A fetched client metadata document is fresh for at least this long [default: 5m].
    #[arg(long, env = "LATCHKEY_METADATA_DOCUMENT_MIN_CACHE", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) metadata_document_min_cache: Option<Duration>,
    /// ... and at most this long; a stale copy covers failed re-fetches up to this age [default: 24h].
    #[arg(long, env = "LATCHKEY_METADATA_DOCUMENT_MAX_CACHE", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) metadata_document_max_cache: Option<Duration>,
    /// How long a failed metadata-document fetch is remembered [default: 60s].
    #[arg(long, env = "LATCHKEY_METADATA_DOCUMENT_FAILURE_CACHE", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) metadata_document_failure_cache: Option<Duration>,
    /// Metadata-document fetches allowed per host per minute [default: 10].
    #[arg(
        long,
        env = "LATCHKEY_METADATA_DOCUMENT_FETCH_LIMIT",
        value_name = "COUNT"
    )]
    pub(crate) metadata_document_fetch_limit: Option<u32>,
    /// DEVELOPMENT ONLY: accept http:// client metadata document URLs on 127.0.0.1,
    /// [::1] and localhost, and fetch from loopback addresses [default: false].
    #[arg(long, env = "LATCHKEY_ALLOW_INSECURE_METADATA_DOCUMENTS", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub(crate) allow_insecure_metadata_documents: Option<bool>,
    /// A host whose metadata-document clients the consent page shows as verified
    /// (repeatable; in the environment, separate several with spaces).
    #[arg(
        long = "trusted-client-host",
        env = "LATCHKEY_TRUSTED_CLIENT_HOSTS",
        value_delimiter = ' ',
        value_name = "HOST"
    )]
    pub(crate) trusted_client_hosts: Vec<String>,
    /// Whether local users may sign in with a password; false leaves only the
    /// upstream providers on the sign-in page [default: true].
    #[arg(long, env = "LATCHKEY_PASSWORD_LOGIN", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub(crate) password_login: Option<bool>,
    #[command(flatten)]
    pub(crate) upstream: UpstreamArgs,
}

/// The failure window of the sign-in rate limits.
const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);

/// A sign-in limit of `max` failures per [`LOGIN_WINDOW`]; 0 disables it.
fn login_limit(max: u32) -> Option<RateLimitSettings> {
    (max > 0).then_some(RateLimitSettings {
        max,
        window: LOGIN_WINDOW,
    })
}

/// The scope descriptions: the file's table, then the flags (`SCOPE=TEXT`).
pub(crate) fn scope_descriptions(
    args: &[String],
    file: &FileConfig,
) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    let mut descriptions = file.scopes.clone();
    for spec in args {
        let Some((scope, text)) = spec.split_once('=') else {
            anyhow::bail!("--scope-description {spec:?} is not SCOPE=TEXT");
        };
        descriptions.insert(scope.trim().to_owned(), text.trim().to_owned());
    }
    Ok(descriptions)
}

/// Everything `serve` runs with, resolved.
#[derive(Debug)]
struct Settings {
    listen: String,
    issuer: Option<String>,
    service: ServiceConfig,
    http: HttpConfig,
    cleanup_interval: Duration,
    guard: Option<all_in_one::AllInOne>,
}

/// The secret settings from flag/env or file, as `SecretString`s.
fn secret(arg: Option<&String>, file: Option<&String>) -> Option<SecretString> {
    arg.or(file)
        .filter(|value| !value.is_empty())
        .map(|value| SecretString::new(value.as_str()))
}

/// The resources: flags or environment if any, else the file's tables.
pub(crate) fn resources(args: &[String], file: &FileConfig) -> anyhow::Result<ResourceRegistry> {
    let configured: Vec<ConfiguredResource> = if args.iter().any(|spec| !spec.trim().is_empty()) {
        args.iter()
            .filter(|spec| !spec.trim().is_empty())
            .map(|spec| ConfiguredResource::parse_spec(spec))
            .collect::<Result<_, _>>()?
    } else {
        file.resources
            .iter()
            .map(|resource| {
                let scopes: Vec<&str> = resource.scopes.iter().map(String::as_str).collect();
                ConfiguredResource::new(&resource.uri, &scopes, resource.name.clone()).map_err(
                    |reason| anyhow::anyhow!("config file resource {:?}: {reason}", resource.uri),
                )
            })
            .collect::<anyhow::Result<_>>()?
    };
    Ok(ResourceRegistry::new(configured)?)
}

/// The signing settings shared with `keys rotate`.
pub(crate) fn signing(
    args: &SigningArgs,
    file: &FileConfig,
) -> anyhow::Result<(SigningAlgorithm, Duration, Duration)> {
    let defaults = Lifetimes::default();
    let algorithm = match args.signing_alg.as_ref().or(file.signing_alg.as_ref()) {
        Some(name) => SigningAlgorithm::parse(name)?,
        None => SigningAlgorithm::Es256,
    };
    let access = duration(
        args.access_token_ttl,
        file.access_token_ttl.as_ref(),
        "access_token_ttl",
        defaults.access_token,
    )?;
    let reload = duration(
        args.key_reload_interval,
        file.key_reload_interval.as_ref(),
        "key_reload_interval",
        Duration::from_secs(60),
    )?;
    Ok((algorithm, access, reload))
}

impl ServeArgs {
    /// The Client ID Metadata Document settings: flags, then file, then
    /// defaults. Trusted hosts from flags or environment replace the file's.
    fn metadata_document_settings(
        &self,
        file: &FileConfig,
    ) -> anyhow::Result<MetadataDocumentSettings> {
        let defaults = MetadataDocumentSettings::default();
        let flagged: Vec<String> = self
            .trusted_client_hosts
            .iter()
            .map(|host| host.trim().to_ascii_lowercase())
            .filter(|host| !host.is_empty())
            .collect();
        let trusted_hosts = if flagged.is_empty() {
            file.trusted_client_hosts
                .iter()
                .flatten()
                .map(|host| host.trim().to_ascii_lowercase())
                .collect()
        } else {
            flagged
        };
        Ok(MetadataDocumentSettings {
            fetch_timeout: duration(
                self.metadata_document_timeout,
                file.metadata_document_timeout.as_ref(),
                "metadata_document_timeout",
                defaults.fetch_timeout,
            )?,
            min_cache: duration(
                self.metadata_document_min_cache,
                file.metadata_document_min_cache.as_ref(),
                "metadata_document_min_cache",
                defaults.min_cache,
            )?,
            max_cache: duration(
                self.metadata_document_max_cache,
                file.metadata_document_max_cache.as_ref(),
                "metadata_document_max_cache",
                defaults.max_cache,
            )?,
            failure_cache: duration(
                self.metadata_document_failure_cache,
                file.metadata_document_failure_cache.as_ref(),
                "metadata_document_failure_cache",
                defaults.failure_cache,
            )?,
            fetches_per_host_per_minute: self
                .metadata_document_fetch_limit
                .or(file.metadata_document_fetch_limit)
                .unwrap_or(defaults.fetches_per_host_per_minute),
            allow_insecure: self
                .allow_insecure_metadata_documents
                .or(file.allow_insecure_metadata_documents)
                .unwrap_or(false),
            trusted_hosts,
        })
    }

    fn settings(&self, file: &FileConfig) -> anyhow::Result<Settings> {
        let defaults = Lifetimes::default();
        let (signing_algorithm, access_token, key_reload_interval) = signing(&self.signing, file)?;
        let mut service = ServiceConfig::new(String::new());
        service.lifetimes = Lifetimes {
            access_token,
            authorization_code: duration(
                self.code_ttl,
                file.code_ttl.as_ref(),
                "code_ttl",
                defaults.authorization_code,
            )?,
            refresh_idle: duration(
                self.refresh_idle_ttl,
                file.refresh_idle_ttl.as_ref(),
                "refresh_idle_ttl",
                defaults.refresh_idle,
            )?,
            refresh_absolute: duration(
                self.refresh_absolute_ttl,
                file.refresh_absolute_ttl.as_ref(),
                "refresh_absolute_ttl",
                defaults.refresh_absolute,
            )?,
        };
        service.signing_algorithm = signing_algorithm;
        service.key_reload_interval = key_reload_interval;
        service.resources = resources(&self.resources, file)?;
        service.require_resource = self
            .require_resource
            .or(file.require_resource)
            .unwrap_or(true);
        let policy = self
            .registration
            .clone()
            .or_else(|| file.registration.clone())
            .unwrap_or_else(|| "open".to_owned());
        service.registration = RegistrationPolicy::from_name(
            &policy,
            secret(
                self.initial_access_token.as_ref(),
                file.initial_access_token.as_ref(),
            ),
        )?;
        service.registration_rate_limit = match self
            .registration_rate_limit
            .or(file.registration_rate_limit)
            .unwrap_or(20)
        {
            0 => None,
            max => Some(RateLimitSettings {
                max,
                window: Duration::from_secs(3600),
            }),
        };
        service.introspection_secret = secret(
            self.introspection_secret.as_ref(),
            file.introspection_secret.as_ref(),
        );
        service.client_cache_ttl = duration(
            self.client_cache_ttl,
            file.client_cache_ttl.as_ref(),
            "client_cache_ttl",
            Duration::from_secs(30),
        )?;
        let cleanup_interval = duration(
            self.cleanup_interval,
            file.cleanup_interval.as_ref(),
            "cleanup_interval",
            Duration::from_secs(300),
        )?;
        if cleanup_interval < Duration::from_secs(1) {
            anyhow::bail!("the cleanup interval must be at least one second");
        }
        let session_defaults = SessionSettings::default();
        service.sessions = SessionSettings {
            idle: duration(
                self.session_idle_ttl,
                file.session_idle_ttl.as_ref(),
                "session_idle_ttl",
                session_defaults.idle,
            )?,
            absolute: duration(
                self.session_absolute_ttl,
                file.session_absolute_ttl.as_ref(),
                "session_absolute_ttl",
                session_defaults.absolute,
            )?,
        };
        service.consent_ttl = duration(
            self.consent_ttl,
            file.consent_ttl.as_ref(),
            "consent_ttl",
            DEFAULT_CONSENT_TTL,
        )?;
        let login_defaults = LoginRateLimits::default();
        service.login_rate_limits = LoginRateLimits {
            per_account: match self.login_rate_limit.or(file.login_rate_limit) {
                Some(max) => login_limit(max),
                None => login_defaults.per_account,
            },
            per_address: match self
                .login_address_rate_limit
                .or(file.login_address_rate_limit)
            {
                Some(max) => login_limit(max),
                None => login_defaults.per_address,
            },
        };
        service.scope_descriptions = scope_descriptions(&self.scope_descriptions, file)?;
        let guard = all_in_one::settings(self, file)?;
        service.metadata_documents = self.metadata_document_settings(file)?;
        service.password_login = self.password_login.or(file.password_login).unwrap_or(true);
        service.upstreams = crate::upstream::providers(&self.upstream, &file.upstreams, &|name| {
            std::env::var(name).ok()
        })?;
        Ok(Settings {
            listen: self
                .listen
                .clone()
                .or_else(|| file.listen.clone())
                .unwrap_or_else(|| DEFAULT_LISTEN.to_owned()),
            issuer: self.issuer.clone().or_else(|| file.issuer.clone()),
            service,
            http: HttpConfig {
                trust_forwarded_for: self
                    .trust_forwarded_for
                    .or(file.trust_forwarded_for)
                    .unwrap_or(false),
                templates_dir: self
                    .templates_dir
                    .clone()
                    .or_else(|| file.templates_dir.clone()),
                ..HttpConfig::default()
            },
            cleanup_interval,
            guard,
        })
    }
}

/// Installs the SIGINT and SIGTERM handlers now, before anything tells the
/// world the server is up (a signal arriving earlier would kill the process
/// the default way), and returns the future that completes on either.
pub(crate) fn shutdown_signal()
-> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("received SIGINT, shutting down"),
            _ = terminate.recv() => tracing::info!("received SIGTERM, shutting down"),
        }
    })
}

/// The issuer: configured, or `http://<bound address>` with a warning.
fn issuer(configured: Option<String>, bound: SocketAddr) -> anyhow::Result<String> {
    if let Some(issuer) = configured {
        return Ok(issuer);
    }
    if !bound.ip().is_loopback() {
        anyhow::bail!(
            "--issuer is required when listening on {bound}: an issuer must be https \
             (http is only allowed on loopback addresses); set --issuer https://your.host"
        );
    }
    let derived = format!("http://{bound}");
    tracing::warn!(
        issuer = %derived,
        "no --issuer given: using the listen address, which only works on this machine; \
         production needs --issuer https://your.host"
    );
    Ok(derived)
}

/// Prints the start-up summary and the next step.
fn print_summary(
    service: &Service,
    database: &DatabaseUrl,
    secret: &SecretSource,
    has_users: bool,
    guard: Option<(&GuardProxy, &all_in_one::AllInOne)>,
) -> std::io::Result<()> {
    let config = service.config();
    let issuer = &config.issuer;
    let origin = issuer_origin(issuer);
    let paths = Paths::for_issuer(issuer);
    let mut out = std::io::stdout().lock();
    writeln!(out, "Latchkey is serving OAuth 2.1 for MCP")?;
    writeln!(out, "  issuer:     {issuer}")?;
    writeln!(out, "  metadata:   {origin}{}", paths.metadata)?;
    writeln!(out, "  authorize:  {origin}{}", paths.authorize)?;
    writeln!(out, "  account:    {origin}{}", paths.account)?;
    writeln!(out, "  jwks:       {origin}{}", paths.jwks)?;
    writeln!(out, "  token:      {origin}{}", paths.token)?;
    writeln!(out, "  database:   {database}")?;
    match secret {
        SecretSource::Configured => writeln!(out, "  secret:     from the configuration")?,
        SecretSource::File(path) => writeln!(out, "  secret:     {}", path.display())?,
        SecretSource::Generated(path) => {
            writeln!(
                out,
                "  secret:     generated into {} (keep it: the signing keys are encrypted with it)",
                path.display()
            )?;
        }
    }
    writeln!(
        out,
        "  signing:    {} (key {})",
        config.signing_algorithm,
        service.keys().active_kid()
    )?;
    writeln!(
        out,
        "  lifetimes:  access {}, code {}, refresh {} idle / {} absolute",
        format_duration(config.lifetimes.access_token),
        format_duration(config.lifetimes.authorization_code),
        format_duration(config.lifetimes.refresh_idle),
        format_duration(config.lifetimes.refresh_absolute)
    )?;
    writeln!(out, "  registration: {}", config.registration.name())?;
    let documents = &config.metadata_documents;
    if documents.allow_insecure {
        writeln!(
            out,
            "  WARNING:    --allow-insecure-metadata-documents is ON: http:// client metadata \
             documents on loopback are accepted. For development only; never in production."
        )?;
    }
    if !documents.trusted_hosts.is_empty() {
        writeln!(
            out,
            "  trusted client hosts: {}",
            documents.trusted_hosts.join(" ")
        )?;
    }
    if !config.password_login {
        writeln!(out, "  passwords:  off (upstream sign-in only)")?;
    }
    for provider in &config.upstreams {
        writeln!(
            out,
            "  upstream:   {} \"{}\" at {} (redirect URI to register there: {})",
            provider.id,
            provider.display_name,
            provider.issuer,
            provider.redirect_uri(config.endpoint_base())
        )?;
    }
    if config.resources.is_empty() {
        writeln!(out, "  resources:  none")?;
    }
    for resource in config.resources.iter() {
        let scopes = if resource.scopes.is_empty() {
            "no scopes".to_owned()
        } else {
            format!("scopes: {}", resource.scopes)
        };
        let name = resource
            .name
            .as_deref()
            .map(|name| format!(" \"{name}\""))
            .unwrap_or_default();
        writeln!(out, "  resource:   {}{name} ({scopes})", resource.uri)?;
    }
    if let Some((proxy, guard)) = guard {
        let resource = proxy.layer().metadata().resource.as_str();
        writeln!(
            out,
            "  guard:      {resource} -> {} (all-in-one)",
            guard.proxy.upstream
        )?;
        writeln!(out, "  guard metadata: {}", proxy.layer().metadata_url())?;
        writeln!(
            out,
            "  guard scopes: {}; Host sent upstream: {}; leeway {}",
            guard::describe_policy(&guard.proxy.policy),
            guard::describe_host(&guard.proxy.host),
            format_duration(guard.proxy.leeway)
        )?;
        writeln!(out, "  mcp:        {resource}")?;
    }
    writeln!(out)?;
    if !has_users {
        writeln!(
            out,
            "No users yet: create one with `latchkey user add --email you@example.com --password-stdin` \
             (with the same --data-dir, --database-url or --config as this server), typing the \
             password on standard input."
        )?;
    }
    if config.resources.is_empty() {
        writeln!(
            out,
            "Next: no protected resource is configured, so no token can be issued yet. Restart with\n  \
             --resource https://your-mcp-server.example/mcp=scope1,scope2\n\
             (repeatable; or [[resource]] tables in the --config file)."
        )?;
    } else {
        let example = config
            .resources
            .iter()
            .next()
            .map(|resource| resource.uri.as_str().to_owned())
            .unwrap_or_default();
        writeln!(
            out,
            "Next: create a machine client (with the same --data-dir, --database-url or --config \
             as this server) and get a token:"
        )?;
        writeln!(out, "  latchkey client add --name my-agent --confidential")?;
        writeln!(
            out,
            "  curl -s -u CLIENT_ID:CLIENT_SECRET -d grant_type=client_credentials \
             --data-urlencode resource={example} {origin}{}",
            paths.token
        )?;
        if !matches!(config.registration, RegistrationPolicy::Closed) {
            writeln!(
                out,
                "MCP clients can register themselves at {origin}{}",
                paths.register
            )?;
        }
    }
    out.flush()
}

/// `scheme://authority` of an issuer, for printing endpoint URLs.
fn issuer_origin(issuer: &str) -> &str {
    let after_scheme = issuer.find("://").map_or(0, |index| index + 3);
    let end = issuer
        .get(after_scheme..)
        .and_then(|rest| rest.find('/'))
        .map_or(issuer.len(), |index| after_scheme + index);
    issuer.get(..end).unwrap_or(issuer)
}

/// Runs `latchkey serve`.
pub(crate) async fn run(args: &ServeArgs) -> anyhow::Result<()> {
    let common = args.common.resolve()?;
    crate::logging::init(common.log_format);
    let mut settings = args.settings(&common.file)?;
    let database = DatabaseUrl::parse(&common.database_url)?;
    crate::store::create_data_dir(&common.data_dir)?;

    let listener = tokio::net::TcpListener::bind(&settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let bound = listener
        .local_addr()
        .context("the listener has no address")?;
    settings.service.issuer = issuer(settings.issuer.take(), bound)?;
    let guard_settings = settings.guard.take();
    let guarded = match &guard_settings {
        Some(guard) => Some(all_in_one::add_guarded_resource(
            &mut settings.service,
            guard,
        )?),
        None => None,
    };
    settings
        .service
        .validate()
        .context("invalid configuration")?;
    if settings.service.metadata_documents.allow_insecure {
        tracing::warn!(
            "--allow-insecure-metadata-documents is on: http:// client metadata documents on \
             127.0.0.1, [::1] and localhost are accepted and fetched from loopback addresses. \
             This is for development and tests only; never enable it in production"
        );
    }

    let store = common.open_store().await?;
    let has_users = !store
        .list_users()
        .await
        .context("cannot read the users")?
        .is_empty();
    let configured_secret = args
        .signing
        .secret
        .as_deref()
        .or(common.file.secret.as_deref());
    let (secret, secret_source) = load_or_generate(configured_secret, &common.data_dir)?;
    let service = Service::start(settings.service, store, Arc::new(SystemClock), &secret)
        .await
        .context("cannot start the authorization server")?;

    // Discovery of the upstream providers, in the background: a provider
    // that is down must not keep Latchkey from serving (it is retried at the
    // first sign-in through it).
    if !service.config().upstreams.is_empty() {
        let warming = service.clone();
        tokio::spawn(async move { warming.warm_upstreams().await });
    }
    let proxy = match (&guard_settings, guarded) {
        (Some(guard), Some(resource)) => Some(all_in_one::build(&service, guard, resource).await?),
        _ => None,
    };

    let (stop, stopped) = watch::channel(false);
    let cleanup = tokio::spawn(cleanup_task(
        service.clone(),
        settings.cleanup_interval,
        stopped.clone(),
    ));
    let reload = tokio::spawn(reload_task(
        service.clone(),
        proxy
            .as_ref()
            .map(|proxy| proxy.layer().validator().clone()),
        service.config().key_reload_interval,
        stopped,
    ));

    let state =
        AppState::new(service.clone(), settings.http).context("cannot load the page templates")?;
    if !state.pages.overridden().is_empty() {
        tracing::info!(files = ?state.pages.overridden(), "using page template overrides");
    }
    let mut app = router(state);
    if let Some(proxy) = &proxy {
        app = app.merge(latchkey_resource::proxy::router(proxy));
    }
    let shutdown = shutdown_signal()?;
    let (stopping, stopping_now) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown.await;
        let _ = stopping.send(());
    };
    print_summary(
        &service,
        &database,
        &secret_source,
        has_users,
        proxy.as_ref().zip(guard_settings.as_ref()),
    )?;
    tracing::info!(address = %bound, issuer = %service.config().issuer, "listening");
    let serving = latchkey_http::serve(listener, app, shutdown);
    tokio::pin!(serving);
    // Open SSE streams through the guard may never end: after the signal
    // they get a grace period, then the process stops anyway.
    let served = tokio::select! {
        served = &mut serving => served,
        () = async {
            if stopping_now.await.is_err() {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(guard::SHUTDOWN_GRACE).await;
        } => {
            tracing::warn!("open streams did not end in time; stopping anyway");
            Ok(())
        }
    };
    let _ = stop.send(true);
    let _ = tokio::join!(cleanup, reload);
    served.context("the server stopped with an error")?;
    tracing::info!("stopped");
    Ok(())
}

/// Deletes expired rows every `interval` until told to stop.
async fn cleanup_task(service: Service, interval: Duration, mut stop: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => match service.cleanup().await {
                Ok(report) => tracing::debug!(
                    codes = report.codes,
                    refresh_families = report.refresh_families,
                    refresh_tokens = report.refresh_tokens,
                    consents = report.consents,
                    denied_access_tokens = report.denied_access_tokens,
                    sessions = report.sessions,
                    pending = report.pending,
                    signing_keys = report.signing_keys,
                    "cleaned up expired rows"
                ),
                Err(error) => tracing::warn!(%error, "clean-up failed; retrying at the next interval"),
            },
            _ = stop.changed() => return,
        }
    }
}

/// Reloads the signing keys every `interval` until told to stop, and hands
/// changed keys to the all-in-one guard's validator at once.
async fn reload_task(
    service: Service,
    validator: Option<TokenValidator>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick fires at once; the keys were just loaded.
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = ticker.tick() => match service.reload_keys().await {
                Ok(true) => {
                    tracing::info!(kid = %service.keys().active_kid(), "signing keys changed; reloaded");
                    if let Some(validator) = &validator
                        && let Err((_, error)) = validator.refresh_keys().await
                    {
                        tracing::warn!(%error, "the guard could not take the reloaded keys");
                    }
                }
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, "reloading the signing keys failed"),
            },
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuers_derive_from_loopback_addresses_only() {
        let loopback: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(issuer(None, loopback).unwrap(), "http://127.0.0.1:8080");
        let v6: SocketAddr = "[::1]:9000".parse().unwrap();
        assert_eq!(issuer(None, v6).unwrap(), "http://[::1]:9000");
        let public: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert!(
            issuer(None, public)
                .unwrap_err()
                .to_string()
                .contains("--issuer")
        );
        assert_eq!(
            issuer(Some("https://auth.example.com".into()), public).unwrap(),
            "https://auth.example.com"
        );
    }

    #[test]
    fn origins_drop_the_issuer_path() {
        assert_eq!(issuer_origin("https://a.example/t1"), "https://a.example");
        assert_eq!(
            issuer_origin("http://127.0.0.1:8080"),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            issuer_origin("http://127.0.0.1:8080/"),
            "http://127.0.0.1:8080"
        );
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let file: FileConfig = toml::from_str(
            r#"
            access_token_ttl = "5m"
            code_ttl = "30s"
            registration = "closed"
            registration_rate_limit = 0
            require_resource = false
            trust_forwarded_for = true
            consent_ttl = "7d"
            login_rate_limit = 9
            login_address_rate_limit = 0
            templates_dir = "/srv/templates"
            password_login = false
            [scopes]
            a = "From the file"
            c = "Sea"
            [[resource]]
            uri = "https://from-file.example/mcp"
            scopes = ["a"]
            [[upstream]]
            id = "corp"
            issuer = "https://idp.example.com"
            client_id = "latchkey"
            client_secret = "s3cret"
            display_name = "Corp SSO"
            auto_provision = true
            "#,
        )
        .unwrap();
        let mut args = ServeArgs {
            common: CommonArgs {
                storage: crate::config::StorageArgs {
                    config: None,
                    data_dir: None,
                    database_url: None,
                },
                no_migrate: None,
                log_format: None,
            },
            signing: SigningArgs {
                secret: None,
                signing_alg: None,
                access_token_ttl: Some(Duration::from_secs(120)),
                key_reload_interval: None,
            },
            listen: None,
            issuer: None,
            resources: Vec::new(),
            require_resource: None,
            code_ttl: None,
            refresh_idle_ttl: None,
            refresh_absolute_ttl: None,
            registration: None,
            initial_access_token: None,
            registration_rate_limit: None,
            introspection_secret: None,
            client_cache_ttl: None,
            cleanup_interval: None,
            trust_forwarded_for: None,
            templates_dir: None,
            session_idle_ttl: Some(Duration::from_secs(1800)),
            session_absolute_ttl: None,
            consent_ttl: None,
            login_rate_limit: Some(0),
            login_address_rate_limit: None,
            scope_descriptions: vec!["a=From the flag".to_owned(), "b=Bee".to_owned()],
            guard_upstream: None,
            guard_path: None,
            guard_scope: None,
            guard_method_scopes: Vec::new(),
            guard_tool_scopes: Vec::new(),
            guard_upstream_host: None,
            guard_leeway: None,
            metadata_document_timeout: Some(Duration::from_secs(2)),
            metadata_document_min_cache: None,
            metadata_document_max_cache: None,
            metadata_document_failure_cache: None,
            metadata_document_fetch_limit: None,
            allow_insecure_metadata_documents: None,
            trusted_client_hosts: vec!["Claude.AI".to_owned()],
            password_login: None,
            upstream: UpstreamArgs::default(),
        };
        let settings = args.settings(&file).unwrap();
        assert_eq!(settings.listen, DEFAULT_LISTEN);
        assert_eq!(
            settings.service.lifetimes.access_token,
            Duration::from_secs(120)
        );
        assert_eq!(
            settings.service.lifetimes.authorization_code,
            Duration::from_secs(30)
        );
        assert_eq!(
            settings.service.lifetimes.refresh_idle,
            Lifetimes::default().refresh_idle
        );
        assert_eq!(settings.service.registration, RegistrationPolicy::Closed);
        assert_eq!(settings.service.registration_rate_limit, None);
        assert!(!settings.service.require_resource);
        assert!(settings.http.trust_forwarded_for);
        let documents = &settings.service.metadata_documents;
        assert_eq!(documents.fetch_timeout, Duration::from_secs(2));
        assert_eq!(documents.max_cache, Duration::from_secs(24 * 3600));
        assert!(!documents.allow_insecure);
        assert_eq!(documents.trusted_hosts, ["claude.ai"]);
        assert_eq!(
            settings.http.templates_dir.as_deref(),
            Some(std::path::Path::new("/srv/templates"))
        );
        assert_eq!(settings.service.sessions.idle, Duration::from_secs(1800));
        assert_eq!(
            settings.service.sessions.absolute,
            SessionSettings::default().absolute
        );
        assert_eq!(
            settings.service.consent_ttl,
            Duration::from_secs(7 * 24 * 3600)
        );
        assert!(!settings.service.password_login);
        let upstreams = &settings.service.upstreams;
        assert_eq!(upstreams.len(), 1);
        assert_eq!(
            (upstreams[0].id.as_str(), upstreams[0].display_name.as_str()),
            ("corp", "Corp SSO")
        );
        assert!(upstreams[0].auto_provision && !upstreams[0].link_by_verified_email);
        assert_eq!(upstreams[0].validate(), Ok(()));
        // The flag's 0 turns the per-account limit off; the file's 0 the other.
        assert_eq!(settings.service.login_rate_limits.per_account, None);
        assert_eq!(settings.service.login_rate_limits.per_address, None);
        let descriptions: Vec<(&str, &str)> = settings
            .service
            .scope_descriptions
            .iter()
            .map(|(scope, text)| (scope.as_str(), text.as_str()))
            .collect();
        assert_eq!(
            descriptions,
            [("a", "From the flag"), ("b", "Bee"), ("c", "Sea")]
        );
        assert_eq!(
            settings
                .service
                .resources
                .iter()
                .next()
                .unwrap()
                .uri
                .as_str(),
            "https://from-file.example/mcp"
        );

        // Flags replace the file's resources entirely.
        args.resources = vec!["https://flag.example/mcp=x,y".to_owned()];
        args.registration = Some("open".to_owned());
        let settings = args.settings(&file).unwrap();
        let only: Vec<_> = settings
            .service
            .resources
            .iter()
            .map(|resource| resource.uri.as_str().to_owned())
            .collect();
        assert_eq!(only, ["https://flag.example/mcp"]);
        assert_eq!(settings.service.registration, RegistrationPolicy::Open);

        args.registration = Some("token".to_owned());
        assert!(
            args.settings(&file)
                .unwrap_err()
                .to_string()
                .contains("initial access token")
        );
    }
}
