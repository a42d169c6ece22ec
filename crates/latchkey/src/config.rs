//! Configuration: command-line flags, `LATCHKEY_*` environment variables
//! and the optional TOML config file, merged with one precedence rule:
//! **flag > environment > config file > default**.
//!
//! Clap already applies "flag > environment" (every flag has an `env`), so
//! every setting is an `Option` in the argument structs; the file fills
//! what is still `None`, and the default what the file left out. Settings
//! that are lists (`--resource`) are taken whole from the first source
//! that has any.
//!
//! The file is read only when `--config` / `LATCHKEY_CONFIG` names it. Its
//! keys are the flag names with `_` for `-` (see docs/configuration.md);
//! unknown keys are an error, so a typo does not silently fall back to a
//! default. Durations are written `90s`, `15m`, `12h`, `30d` or a plain
//! number of seconds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use serde::Deserialize;

/// The data directory when none is configured.
pub(crate) const DEFAULT_DATA_DIR: &str = "./latchkey-data";
/// The listen address when none is configured.
pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    /// Human-readable lines (the default when stderr is a terminal).
    Text,
    /// One JSON object per line (the default otherwise).
    Json,
}

/// Parses `90`, `90s`, `15m`, `12h`, `30d` or `500ms`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|character: char| !character.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (use e.g. 90s, 15m, 12h or 30d)"))?;
    let seconds = |multiplier: u64| {
        value
            .checked_mul(multiplier)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{text:?} is too long"))
    };
    match unit.trim() {
        "" | "s" => seconds(1),
        "m" | "min" => seconds(60),
        "h" => seconds(3600),
        "d" => seconds(24 * 3600),
        "ms" => Ok(Duration::from_millis(value)),
        other => Err(format!(
            "unknown duration unit {other:?} in {text:?} (use s, m, h or d)"
        )),
    }
}

/// Writes a duration back in the largest exact unit, for messages.
pub(crate) fn format_duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    if duration.subsec_nanos() != 0 {
        return format!("{}ms", duration.as_millis());
    }
    for (unit, size) in [("d", 24 * 3600), ("h", 3600), ("m", 60)] {
        if seconds >= size && seconds.is_multiple_of(size) {
            return format!("{}{unit}", seconds / size);
        }
    }
    format!("{seconds}s")
}

/// A duration in the config file: a string with a unit, or seconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum FileDuration {
    /// A number of seconds.
    Seconds(u64),
    /// `15m` and the like.
    Text(String),
}

impl FileDuration {
    fn get(&self, key: &str) -> anyhow::Result<Duration> {
        match self {
            FileDuration::Seconds(seconds) => Ok(Duration::from_secs(*seconds)),
            FileDuration::Text(text) => parse_duration(text)
                .map_err(|error| anyhow::anyhow!("config file `{key}`: {error}")),
        }
    }
}

/// A `[[resource]]` table of the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileResource {
    /// The resource URI (the MCP server's URL).
    pub(crate) uri: String,
    /// The scopes clients may request for it.
    #[serde(default)]
    pub(crate) scopes: Vec<String>,
    /// A display name.
    #[serde(default)]
    pub(crate) name: Option<String>,
}

/// The config file: every key optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    pub(crate) listen: Option<String>,
    pub(crate) issuer: Option<String>,
    pub(crate) database_url: Option<String>,
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) secret: Option<String>,
    pub(crate) log_format: Option<LogFormat>,
    pub(crate) migrate: Option<bool>,
    pub(crate) signing_alg: Option<String>,
    pub(crate) access_token_ttl: Option<FileDuration>,
    pub(crate) code_ttl: Option<FileDuration>,
    pub(crate) refresh_idle_ttl: Option<FileDuration>,
    pub(crate) refresh_absolute_ttl: Option<FileDuration>,
    pub(crate) key_reload_interval: Option<FileDuration>,
    pub(crate) client_cache_ttl: Option<FileDuration>,
    pub(crate) cleanup_interval: Option<FileDuration>,
    pub(crate) require_resource: Option<bool>,
    pub(crate) registration: Option<String>,
    pub(crate) initial_access_token: Option<String>,
    pub(crate) registration_rate_limit: Option<u32>,
    pub(crate) introspection_secret: Option<String>,
    pub(crate) trust_forwarded_for: Option<bool>,
    pub(crate) templates_dir: Option<PathBuf>,
    pub(crate) session_idle_ttl: Option<FileDuration>,
    pub(crate) session_absolute_ttl: Option<FileDuration>,
    pub(crate) consent_ttl: Option<FileDuration>,
    pub(crate) login_rate_limit: Option<u32>,
    pub(crate) login_address_rate_limit: Option<u32>,
    pub(crate) guard_upstream: Option<String>,
    pub(crate) guard_path: Option<String>,
    pub(crate) guard_scope: Option<String>,
    /// MCP method = scopes, for the all-in-one guard.
    #[serde(default)]
    pub(crate) guard_method_scopes: BTreeMap<String, String>,
    /// Tool name = scopes, for the all-in-one guard.
    #[serde(default)]
    pub(crate) guard_tool_scopes: BTreeMap<String, String>,
    pub(crate) guard_upstream_host: Option<String>,
    pub(crate) guard_leeway: Option<FileDuration>,
    pub(crate) metadata_document_timeout: Option<FileDuration>,
    pub(crate) metadata_document_min_cache: Option<FileDuration>,
    pub(crate) metadata_document_max_cache: Option<FileDuration>,
    pub(crate) metadata_document_failure_cache: Option<FileDuration>,
    pub(crate) metadata_document_fetch_limit: Option<u32>,
    pub(crate) allow_insecure_metadata_documents: Option<bool>,
    pub(crate) trusted_client_hosts: Option<Vec<String>>,
    pub(crate) password_login: Option<bool>,
    #[serde(default, rename = "resource")]
    pub(crate) resources: Vec<FileResource>,
    /// `[[upstream]]`: upstream OpenID Connect providers.
    #[serde(default, rename = "upstream")]
    pub(crate) upstreams: Vec<crate::upstream::FileUpstream>,
    /// `[guard]`: the settings of `latchkey guard`.
    pub(crate) guard: Option<crate::guard::FileGuard>,
    /// `[scopes]`: scope name = description for the consent page.
    #[serde(default)]
    pub(crate) scopes: BTreeMap<String, String>,
}

impl FileConfig {
    /// Reads the file at `path`, or nothing when no file is configured.
    pub(crate) fn load(path: Option<&Path>) -> anyhow::Result<FileConfig> {
        let Some(path) = path else {
            return Ok(FileConfig::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the config file {}", path.display()))?;
        toml::from_str(&text)
            .with_context(|| format!("the config file {} is not valid", path.display()))
    }
}

/// Picks a duration: the flag or environment value, else the file's, else
/// the default.
pub(crate) fn duration(
    arg: Option<Duration>,
    file: Option<&FileDuration>,
    key: &str,
    default: Duration,
) -> anyhow::Result<Duration> {
    match (arg, file) {
        (Some(value), _) => Ok(value),
        (None, Some(value)) => value.get(key),
        (None, None) => Ok(default),
    }
}

/// Where the data lives: what every command needs.
#[derive(Debug, Args)]
pub(crate) struct StorageArgs {
    /// A TOML config file; its values apply where neither a flag nor an
    /// environment variable is given.
    #[arg(long, env = "LATCHKEY_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Where the SQLite database and the generated server secret live
    /// (created if missing) [default: ./latchkey-data].
    #[arg(long, env = "LATCHKEY_DATA_DIR", value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// The database: sqlite://<path>, postgres://user[:password]@host[:port]/db
    /// or memory: [default: sqlite://<data-dir>/latchkey.db].
    #[arg(
        long,
        env = "LATCHKEY_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub(crate) database_url: Option<String>,
}

/// Settings the commands that use the store share.
#[derive(Debug, Args)]
pub(crate) struct CommonArgs {
    #[command(flatten)]
    pub(crate) storage: StorageArgs,
    /// Do not apply pending database migrations at start.
    #[arg(
        long,
        env = "LATCHKEY_NO_MIGRATE",
        num_args = 0..=1,
        default_missing_value = "true",
        value_name = "BOOL"
    )]
    pub(crate) no_migrate: Option<bool>,
    /// Log format [default: text on a terminal, json otherwise].
    #[arg(long, env = "LATCHKEY_LOG_FORMAT", value_enum)]
    pub(crate) log_format: Option<LogFormat>,
}

/// The resolved common settings.
#[derive(Debug)]
pub(crate) struct Common {
    /// The config file's contents (empty without one).
    pub(crate) file: FileConfig,
    /// The data directory.
    pub(crate) data_dir: PathBuf,
    /// The database URL (may hold a password: never print it as is).
    pub(crate) database_url: String,
    /// Whether to migrate at start.
    pub(crate) migrate: bool,
    /// The log format, if configured.
    pub(crate) log_format: Option<LogFormat>,
}

impl StorageArgs {
    /// Reads the config file and resolves where the data lives.
    pub(crate) fn resolve(&self) -> anyhow::Result<(FileConfig, PathBuf, String)> {
        let file = FileConfig::load(self.config.as_deref())?;
        let data_dir = self
            .data_dir
            .clone()
            .or_else(|| file.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let database_url = self
            .database_url
            .clone()
            .or_else(|| file.database_url.clone())
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("latchkey.db").display()));
        Ok((file, data_dir, database_url))
    }
}

impl CommonArgs {
    /// Reads the config file and resolves the common settings.
    pub(crate) fn resolve(&self) -> anyhow::Result<Common> {
        let (file, data_dir, database_url) = self.storage.resolve()?;
        let migrate = match self.no_migrate {
            Some(no_migrate) => !no_migrate,
            None => file.migrate.unwrap_or(true),
        };
        let log_format = self.log_format.or(file.log_format);
        Ok(Common {
            file,
            data_dir,
            database_url,
            migrate,
            log_format,
        })
    }
}

/// Settings of the signing keys, for `serve` and `keys rotate`.
#[derive(Debug, Args)]
pub(crate) struct SigningArgs {
    /// The server secret that encrypts signing keys at rest (at least 32
    /// characters) [default: read from, or generated into, <data-dir>/secret].
    /// Every instance sharing a database must use the same one. Prefer the
    /// environment variable or the file: flags show up in process lists.
    #[arg(
        long,
        env = "LATCHKEY_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub(crate) secret: Option<String>,
    /// The algorithm of new signing keys: ES256, RS256 or EdDSA [default: ES256].
    #[arg(long, env = "LATCHKEY_SIGNING_ALG", value_name = "ALG")]
    pub(crate) signing_alg: Option<String>,
    /// Access-token lifetime [default: 15m].
    #[arg(long, env = "LATCHKEY_ACCESS_TOKEN_TTL", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) access_token_ttl: Option<Duration>,
    /// How often signing keys are reloaded from the database [default: 60s].
    #[arg(long, env = "LATCHKEY_KEY_RELOAD_INTERVAL", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) key_reload_interval: Option<Duration>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_duration(" 30d "), Ok(Duration::from_secs(2_592_000)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        for bad in [
            "",
            "m",
            "15 minutes",
            "1.5h",
            "-1s",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(format_duration(Duration::from_secs(900)), "15m");
        assert_eq!(format_duration(Duration::from_secs(2_592_000)), "30d");
        assert_eq!(format_duration(Duration::from_secs(61)), "61s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn the_file_accepts_every_key_and_refuses_typos() {
        let file: FileConfig = toml::from_str(
            r#"
            listen = "0.0.0.0:9000"
            issuer = "https://auth.example.com"
            database_url = "postgres://latchkey@db/latchkey"
            data_dir = "/var/lib/latchkey"
            secret = "0123456789abcdef0123456789abcdef"
            log_format = "json"
            migrate = false
            signing_alg = "EdDSA"
            access_token_ttl = "5m"
            code_ttl = 30
            refresh_idle_ttl = "7d"
            refresh_absolute_ttl = "30d"
            key_reload_interval = "30s"
            client_cache_ttl = "10s"
            cleanup_interval = "1m"
            require_resource = false
            registration = "token"
            initial_access_token = "0123456789abcdef"
            registration_rate_limit = 5
            introspection_secret = "0123456789abcdef"
            trust_forwarded_for = true
            templates_dir = "/etc/latchkey/templates"
            session_idle_ttl = "30m"
            session_absolute_ttl = "8h"
            consent_ttl = "7d"
            login_rate_limit = 10
            login_address_rate_limit = 100
            metadata_document_timeout = "3s"
            metadata_document_min_cache = "10m"
            metadata_document_max_cache = "12h"
            metadata_document_failure_cache = "30s"
            metadata_document_fetch_limit = 20
            allow_insecure_metadata_documents = false
            trusted_client_hosts = ["claude.ai", "vscode.dev"]
            guard_upstream = "http://127.0.0.1:3000"
            guard_path = "/mcp"
            guard_scope = "mcp"
            guard_upstream_host = "upstream"
            guard_leeway = "5s"
            [guard_method_scopes]
            "tools/call" = "mcp:tools"
            [guard_tool_scopes]
            delete = "admin"

            [scopes]
            "files:read" = "Read your files"

            [[resource]]
            uri = "https://mcp.example.com/mcp"
            scopes = ["tools", "files:read"]
            name = "Example MCP"

            [[resource]]
            uri = "https://other.example.com"
            "#,
        )
        .unwrap();
        assert_eq!(file.resources.len(), 2);
        assert_eq!(file.scopes["files:read"], "Read your files");
        assert_eq!(file.login_rate_limit, Some(10));
        assert_eq!(
            file.trusted_client_hosts.as_deref(),
            Some(["claude.ai".to_owned(), "vscode.dev".to_owned()].as_slice())
        );
        assert_eq!(file.metadata_document_fetch_limit, Some(20));
        assert_eq!(file.resources[0].scopes, ["tools", "files:read"]);
        assert_eq!(
            duration(None, file.code_ttl.as_ref(), "code_ttl", Duration::ZERO).unwrap(),
            Duration::from_secs(30)
        );
        assert_eq!(
            duration(
                Some(Duration::from_secs(1)),
                file.access_token_ttl.as_ref(),
                "access_token_ttl",
                Duration::ZERO
            )
            .unwrap(),
            Duration::from_secs(1)
        );
        assert_eq!(file.log_format, Some(LogFormat::Json));

        let typo = toml::from_str::<FileConfig>("acess_token_ttl = \"5m\"").unwrap_err();
        assert!(typo.to_string().contains("acess_token_ttl"), "{typo}");
        let bad = toml::from_str::<FileConfig>("code_ttl = \"soon\"").unwrap();
        assert!(
            duration(None, bad.code_ttl.as_ref(), "code_ttl", Duration::ZERO)
                .unwrap_err()
                .to_string()
                .contains("code_ttl")
        );
    }

    #[test]
    fn common_settings_follow_the_precedence_rule() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("latchkey.toml");
        std::fs::write(
            &path,
            "data_dir = \"/from/file\"\nlog_format = \"json\"\nmigrate = false\n",
        )
        .unwrap();
        let args = CommonArgs {
            storage: StorageArgs {
                config: Some(path.clone()),
                data_dir: None,
                database_url: None,
            },
            no_migrate: None,
            log_format: Some(LogFormat::Text),
        };
        let common = args.resolve().unwrap();
        assert_eq!(common.data_dir, PathBuf::from("/from/file"));
        assert_eq!(common.database_url, "sqlite:///from/file/latchkey.db");
        assert!(!common.migrate);
        assert_eq!(common.log_format, Some(LogFormat::Text));

        let flags = CommonArgs {
            storage: StorageArgs {
                config: Some(path),
                data_dir: Some(PathBuf::from("/from/flag")),
                database_url: Some("memory:".to_owned()),
            },
            no_migrate: Some(false),
            log_format: None,
        };
        let common = flags.resolve().unwrap();
        assert_eq!(common.data_dir, PathBuf::from("/from/flag"));
        assert_eq!(common.database_url, "memory:");
        assert!(common.migrate);
        assert_eq!(common.log_format, Some(LogFormat::Json));

        let defaults = CommonArgs {
            storage: StorageArgs {
                config: None,
                data_dir: None,
                database_url: None,
            },
            no_migrate: None,
            log_format: None,
        }
        .resolve()
        .unwrap();
        assert_eq!(
            defaults.database_url,
            "sqlite://./latchkey-data/latchkey.db"
        );
        assert!(defaults.migrate);
        assert!(
            FileConfig::load(Some(Path::new("/nonexistent/latchkey.toml")))
                .unwrap_err()
                .to_string()
                .contains("/nonexistent/latchkey.toml")
        );
    }
}
