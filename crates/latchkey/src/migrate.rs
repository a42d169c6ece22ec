//! `latchkey migrate`: applies the embedded schema migrations to the
//! database and reports what it applied.
//!
//! Safe to run at any time and more than once: applied migrations are
//! recorded in the database, and concurrent runs are serialized (see
//! `latchkey_store_diesel::DieselStore::run_migrations`). The database is
//! found as `serve` finds it (`--database-url`, `--data-dir`, `--config`).

use std::io::Write as _;

use clap::Args;
use latchkey_store_diesel::PoolOptions;

use crate::config::StorageArgs;
use crate::store::{DatabaseUrl, migrate};

/// Arguments of `latchkey migrate`.
#[derive(Debug, Args)]
pub(crate) struct MigrateArgs {
    #[command(flatten)]
    pub(crate) storage: StorageArgs,
}

/// Runs `latchkey migrate`, printing one line per applied migration.
pub(crate) async fn run(args: &MigrateArgs) -> anyhow::Result<()> {
    let (_, _, database_url) = args.storage.resolve()?;
    let database = DatabaseUrl::parse(&database_url)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "migrating the {} database {database}",
        database.backend()
    )?;
    let applied = migrate(&database_url, &PoolOptions::default()).await?;
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
