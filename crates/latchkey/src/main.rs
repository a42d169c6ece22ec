//! The `latchkey` binary: command-line parsing and wiring (being written).

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
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve => anyhow::bail!("`latchkey serve` is not ready yet"),
    }
}
