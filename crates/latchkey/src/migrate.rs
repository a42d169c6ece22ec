//! `latchkey migrate`: applies the embedded schema migrations to the
//! database and reports what it applied.
//!
//! Safe to run at any time and more than once: applied migrations are
//! recorded in the database, and concurrent runs are serialized (see
//! `latchkey_store_diesel::DieselStore::run_migrations`).

use std::io::Write as _;

use clap::Args;
use latchkey_store_diesel::PoolOptions;

use crate::store::{DEFAULT_DATABASE_URL, DatabaseUrl, migrate};

/// Arguments of `latchkey migrate`.
#[derive(Debug, Args)]
pub(crate) struct MigrateArgs {
    /// The database URL (see `store::DatabaseUrl` for the accepted forms).
    #[arg(
        long,
        help = "The database: memory:, sqlite://<path> or \
                postgres://user[:password]@host[:port]/database",
        env = "LATCHKEY_DATABASE_URL",
        default_value = DEFAULT_DATABASE_URL,
        hide_env_values = true
    )]
    pub(crate) database_url: String,
}

/// Runs `latchkey migrate`, printing one line per applied migration.
pub(crate) async fn run(args: &MigrateArgs) -> anyhow::Result<()> {
    let database = DatabaseUrl::parse(&args.database_url)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "migrating the {} database {database}",
        database.backend()
    )?;
    let applied = migrate(&args.database_url, &PoolOptions::default()).await?;
    if applied.is_empty() {
        writeln!(
            out,
            "{database}: schema is up to date, no migrations to apply"
        )?;
    } else {
        for name in &applied {
            writeln!(out, "{database}: applied migration {name}")?;
        }
        writeln!(
            out,
            "{database}: {} migration(s) applied, schema is up to date",
            applied.len()
        )?;
    }
    Ok(())
}
