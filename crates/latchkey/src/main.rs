//! The `latchkey` binary: command-line parsing and wiring. The only crate
//! that reads arguments or the environment (`config.rs`), installs a
//! tracing subscriber (`logging.rs`) and chooses a storage backend
//! (`store.rs`).
//!
//! Commands: `serve` (the authorization server; with `--guard-upstream`
//! also the guard, all-in-one), `guard` (the protected-resource reverse
//! proxy alone), `migrate`, `client
//! add|list|show|remove`, `keys list|rotate`, `user
//! add|list|disable|enable|passwd`. Every setting is a flag, a
//! `LATCHKEY_*` environment variable and a key of the optional TOML config
//! file, with precedence flag > environment > file > default.

mod all_in_one;
mod client;
mod config;
mod guard;
mod keys;
mod logging;
mod migrate;
mod secret;
mod serve;
mod store;
mod upstream;
mod user;

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
    /// Run the authorization server (with --guard-upstream, also the guard).
    Serve(Box<serve::ServeArgs>),
    /// Run the guard: a reverse proxy that lets only valid access tokens
    /// through to an MCP server.
    Guard(Box<guard::GuardArgs>),
    /// Apply the database schema migrations and exit.
    Migrate(migrate::MigrateArgs),
    /// Manage clients: add, list, show, remove.
    #[command(subcommand)]
    Client(client::ClientCommand),
    /// Manage token-signing keys: list, rotate.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Manage the users who sign in: add, list, disable, enable, passwd.
    #[command(subcommand)]
    User(user::UserCommand),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve(args) => serve::run(&args).await,
        Command::Guard(args) => guard::run(&args).await,
        Command::Migrate(args) => migrate::run(&args).await,
        Command::Client(command) => client::run(&command).await,
        Command::Keys(command) => keys::run(&command).await,
        Command::User(command) => user::run(&command).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
