//! The `latchkey` binary: command-line parsing and wiring. The only crate
//! that reads arguments or the environment and chooses a storage backend
//! (`store.rs`).

mod migrate;
mod store;

use clap::{Parser, Subcommand};

/// Latchkey: an OAuth 2.1 authorization server for MCP servers.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the authorization server.
    Serve,
    /// Apply the database schema migrations and exit.
    Migrate(migrate::MigrateArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve => anyhow::bail!("`latchkey serve` is not ready yet"),
        Command::Migrate(args) => migrate::run(&args).await,
    }
}
