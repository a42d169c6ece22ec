//! Opening the store a database URL names; the only place that chooses a
//! storage backend.
//!
//! Accepted URLs ([`DatabaseUrl::parse`]):
//!
//! - `memory:`: the in-memory store (nothing survives a restart; demos and
//!   tests);
//! - `sqlite://<path>`: an SQLite file, the path taken as written
//!   (`sqlite:///var/lib/latchkey/latchkey.db` is absolute,
//!   `sqlite://./latchkey-data/latchkey.db` relative); the directory and
//!   file are created if missing;
//! - `postgres://…` or `postgresql://…`: a Postgres database.
//!
//! Invariant: a database URL may carry a password, so it is never printed
//! or put in an error as given; [`DatabaseUrl`]'s `Display` hides it.

use std::fmt;
use std::sync::Arc;

use anyhow::Context as _;
use latchkey_store::Store;
use latchkey_store::memory::MemoryStore;
use latchkey_store_diesel::{PgStore, PoolOptions, SqliteStore};

use crate::config::{Common, CommonArgs};

/// What the accepted URL forms are, for error messages.
const ACCEPTED_FORMS: &str = "memory:, sqlite://<path> (e.g. sqlite:///var/lib/latchkey/latchkey.db) or \
     postgres://user[:password]@host[:port]/database (postgresql:// too)";

/// A parsed database URL: which backend, and its connection string.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum DatabaseUrl {
    /// `memory:`.
    Memory,
    /// `sqlite://<path>`, kept whole.
    Sqlite(String),
    /// `postgres://…` or `postgresql://…`, kept whole.
    Postgres(String),
}

impl DatabaseUrl {
    /// Picks the backend from the URL's scheme.
    pub(crate) fn parse(url: &str) -> anyhow::Result<Self> {
        let trimmed = url.trim();
        if trimmed == "memory:" {
            Ok(Self::Memory)
        } else if trimmed.starts_with("sqlite://") {
            Ok(Self::Sqlite(trimmed.to_owned()))
        } else if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
            Ok(Self::Postgres(trimmed.to_owned()))
        } else {
            // Only the scheme is shown: the rest may hold a password.
            let scheme = trimmed
                .split_once(':')
                .map_or("(none)", |(scheme, _)| scheme);
            anyhow::bail!("unsupported database URL (scheme {scheme:?}); expected {ACCEPTED_FORMS}")
        }
    }

    /// The backend's name: `memory`, `sqlite` or `postgres`.
    pub(crate) fn backend(&self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }
}

impl fmt::Display for DatabaseUrl {
    /// The URL with any password replaced by `****`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory => f.write_str("memory:"),
            Self::Sqlite(url) => f.write_str(url),
            Self::Postgres(url) => f.write_str(&redact_password(url)),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

/// `scheme://user:password@host/…` with the password replaced.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:****@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// How to open a store.
#[derive(Clone, Debug, Default)]
pub(crate) struct StoreOptions {
    /// Pool settings for the SQL backends.
    pub(crate) pool: PoolOptions,
    /// Whether to apply pending migrations when opening (the SQL backends;
    /// the in-memory store needs none).
    pub(crate) run_migrations: bool,
}

impl CommonArgs {
    /// What the operator commands (`user`, `client`, `keys list`) do
    /// first: resolve the common settings, start logging, and open the
    /// store they name, migrating it unless told not to.
    pub(crate) async fn open_store(&self) -> anyhow::Result<Arc<dyn Store>> {
        let common = self.resolve()?;
        crate::logging::init(common.log_format);
        common.open_store().await
    }
}

impl Common {
    /// Opens the store these settings name, migrating it unless told not to.
    pub(crate) async fn open_store(&self) -> anyhow::Result<Arc<dyn Store>> {
        open_store(
            &self.database_url,
            &StoreOptions {
                run_migrations: self.migrate,
                ..StoreOptions::default()
            },
        )
        .await
    }
}

/// Opens the store `url` names (see the module docs).
pub(crate) async fn open_store(
    url: &str,
    options: &StoreOptions,
) -> anyhow::Result<Arc<dyn Store>> {
    let database = DatabaseUrl::parse(url)?;
    Ok(match &database {
        DatabaseUrl::Memory => Arc::new(MemoryStore::new()),
        DatabaseUrl::Sqlite(url) => {
            let store = SqliteStore::open(url, &options.pool)
                .await
                .with_context(|| format!("cannot open the SQLite database {database}"))?;
            if options.run_migrations {
                store
                    .run_migrations()
                    .await
                    .with_context(|| format!("cannot migrate {database}"))?;
            }
            Arc::new(store)
        }
        DatabaseUrl::Postgres(url) => {
            let store = PgStore::connect(url, &options.pool)
                .await
                .with_context(|| format!("cannot connect to {database}"))?;
            if options.run_migrations {
                store
                    .run_migrations()
                    .await
                    .with_context(|| format!("cannot migrate {database}"))?;
            }
            Arc::new(store)
        }
    })
}

/// Creates the data directory (and its parents) if missing, readable by
/// its owner only: it holds the server secret and the SQLite database.
pub(crate) fn create_data_dir(path: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .with_context(|| format!("cannot create the data directory {}", path.display()))
}

/// Applies the pending migrations of the database `url` names and returns
/// their names, oldest first (empty when up to date, and always for
/// `memory:`, which has no schema).
pub(crate) async fn migrate(url: &str, pool: &PoolOptions) -> anyhow::Result<Vec<String>> {
    let database = DatabaseUrl::parse(url)?;
    match &database {
        DatabaseUrl::Memory => Ok(Vec::new()),
        DatabaseUrl::Sqlite(url) => SqliteStore::open(url, pool)
            .await
            .with_context(|| format!("cannot open the SQLite database {database}"))?
            .run_migrations()
            .await
            .with_context(|| format!("cannot migrate {database}")),
        DatabaseUrl::Postgres(url) => PgStore::connect(url, pool)
            .await
            .with_context(|| format!("cannot connect to {database}"))?
            .run_migrations()
            .await
            .with_context(|| format!("cannot migrate {database}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_picks_the_backend() {
        assert_eq!(DatabaseUrl::parse("memory:").unwrap(), DatabaseUrl::Memory);
        assert_eq!(
            DatabaseUrl::parse("sqlite:///tmp/x.db").unwrap().backend(),
            "sqlite"
        );
        assert_eq!(
            DatabaseUrl::parse("postgres://u@h/db").unwrap().backend(),
            "postgres"
        );
        assert_eq!(
            DatabaseUrl::parse("postgresql://u@h/db").unwrap().backend(),
            "postgres"
        );
    }

    #[test]
    fn unknown_schemes_list_the_accepted_forms_without_echoing_secrets() {
        let error = DatabaseUrl::parse("mysql://root:hunter2@db/latchkey")
            .unwrap_err()
            .to_string();
        assert!(error.contains("\"mysql\""), "{error}");
        assert!(
            error.contains("sqlite://") && error.contains("postgres://"),
            "{error}"
        );
        assert!(!error.contains("hunter2"), "{error}");
        assert!(DatabaseUrl::parse("latchkey.db").is_err());
    }

    #[test]
    fn passwords_are_hidden_when_displayed() {
        let url =
            DatabaseUrl::parse("postgres://app:s3cret@db:5432/latchkey?sslmode=disable").unwrap();
        assert_eq!(
            url.to_string(),
            "postgres://app:****@db:5432/latchkey?sslmode=disable"
        );
        let no_password = DatabaseUrl::parse("postgres://app@db/latchkey").unwrap();
        assert_eq!(no_password.to_string(), "postgres://app@db/latchkey");
    }

    #[tokio::test]
    async fn memory_opens_and_needs_no_migrations() {
        let store = open_store(
            "memory:",
            &StoreOptions {
                run_migrations: true,
                ..StoreOptions::default()
            },
        )
        .await
        .unwrap();
        store.ping().await.unwrap();
        assert!(
            migrate("memory:", &PoolOptions::default())
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_urls_open_a_migrated_store() {
        let database = latchkey_store_diesel::testing::TestSqlite::create().unwrap();
        let options = StoreOptions {
            run_migrations: true,
            ..StoreOptions::default()
        };
        let store = open_store(&database.url(), &options).await.unwrap();
        assert!(store.list_clients().await.unwrap().is_empty());
        // Opening again migrates nothing more.
        assert!(
            migrate(&database.url(), &PoolOptions::default())
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_urls_open_a_store() {
        let database = latchkey_store_diesel::testing::TestDatabase::create()
            .await
            .expect("Postgres must be running (see DATABASE_URL)");
        let store = open_store(database.url(), &StoreOptions::default())
            .await
            .unwrap();
        assert!(store.list_users().await.unwrap().is_empty());
        drop(store);
    }
}
