//! `cargo xtask`: the one entry point for developers and CI.
//!
//! This follows matklad's cargo-xtask pattern: `.cargo/config.toml` aliases
//! `cargo xtask` to `cargo run --package xtask --`, so the only prerequisite is
//! cargo itself. The binary depends on no workspace crate, so it compiles in
//! seconds and keeps working while a library crate does not compile.
//!
//! Each subcommand lives in its own module (`lint`, `test`, `bench`, `e2e`),
//! and the checks they share (`tidy`, `layering`, `postgres`) have modules of
//! their own. `lint` and `test` are ordered lists of named steps (`step`), so a
//! new check is one line in a table. Every external command goes through
//! `shell::Shell`, which echoes it before running it and names the failing step
//! when it fails.
//!
//! Arguments are parsed by hand: the grammar is a handful of words and flags,
//! and a parser crate would cost more compile time than it saves.

// Printing results is this binary's job; the workspace-wide lint exists to keep
// stray prints out of the library crates.
#![allow(clippy::print_stdout)]

mod bench;
mod browser;
mod e2e;
mod layering;
mod lint;
mod mcp;
mod postgres;
#[cfg(test)]
mod scratch;
mod shell;
mod step;
mod test;
mod tidy;

use std::process::ExitCode;

use anyhow::{Context as _, bail};

use crate::shell::Shell;

/// The text `cargo xtask help` prints.
const HELP: &str = "\
cargo xtask: Latchkey's developer and CI tasks

USAGE:
    cargo xtask <SUBCOMMAND> [OPTIONS]

SUBCOMMANDS:
    lint                     fmt check, clippy -D warnings, tidy, layering, then
                             cargo-deny (licenses bans sources) when installed
    test [--skip-lint] [-- <FILTER>...]
                             everything lint does except cargo-deny, then finds
                             Postgres, runs the doctests and the workspace tests
                             (cargo nextest, or cargo test when nextest is absent),
                             then the browser tests (Chromium, installed with
                             apt-get when missing), then the MCP SDK clients
                             (TypeScript and Python, venv target/e2e-venv made
                             from e2e/python/requirements.txt) through latchkey
                             guard and serve --guard-upstream; FILTERs are passed
                             to the Rust test runners
    bench store [--seconds N]
                             the store benchmark (SQLite and Postgres, 16 tasks)
                             next to pgbench on the same server; N defaults to 10
    bench pgbench [--seconds N]
                             the pgbench baseline alone
    bench server [--seconds N]
                             the release binary under wrk (32 connections):
                             client_credentials and introspection on SQLite
                             and Postgres, next to node-oidc-provider's
                             client_credentials; N defaults to 15
    e2e [--all]              the browser tests alone (Latchkey's pages in headless
                             Chromium on SQLite and Postgres); --all runs every
                             suite in e2e/tests/, making the Python venv first
    tidy                     the tidy check alone
    layering                 the crate-layering check alone
    postgres                 find Postgres and print the DATABASE_URL tests use
    help                     this text

ENVIRONMENT:
    CARGO          the cargo binary to call (set by cargo itself; default `cargo`)
    DATABASE_URL   the Postgres server for tests and benchmarks; default
                   postgres://postgres@127.0.0.1:5432/postgres when it answers
    CI=true        CI mode: a missing database is an error without a start hint,
                   and the tests do not stop at the first failure
    CHROMIUM_PATH  the Chromium the browser tests drive (default /usr/bin/chromium)
";

fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    match run(&arguments) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // `{:#}` prints the whole context chain on one line, which names the
            // failing step first and the failing command after it.
            eprintln!("\nerror: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Dispatches on the subcommand word.
fn run(arguments: &[String]) -> anyhow::Result<()> {
    let (subcommand, rest) = match arguments.split_first() {
        Some((first, rest)) => (first.as_str(), rest),
        None => {
            print!("{HELP}");
            bail!("no subcommand given");
        }
    };
    match subcommand {
        "help" | "--help" | "-h" => {
            print!("{HELP}");
            Ok(())
        }
        "lint" => {
            reject_arguments("lint", rest)?;
            lint::run(&mut Shell::new()?)
        }
        "test" => {
            let options = test::Options::parse(rest)?;
            test::run(&mut Shell::new()?, &options)
        }
        "bench" => {
            let options = bench::Options::parse(rest)?;
            bench::run(&mut Shell::new()?, &options)
        }
        "e2e" => {
            let options = e2e::Options::parse(rest)?;
            e2e::run(&mut Shell::new()?, &options)
        }
        "tidy" => {
            reject_arguments("tidy", rest)?;
            tidy::run(&Shell::new()?)
        }
        "layering" => {
            reject_arguments("layering", rest)?;
            layering::run(&Shell::new()?)
        }
        "postgres" => {
            reject_arguments("postgres", rest)?;
            let mut shell = Shell::new()?;
            postgres::discover_and_export(&mut shell)?;
            let url = shell
                .exported(postgres::DATABASE_URL)
                .context("discovery exported no DATABASE_URL")?;
            println!("{}", postgres::redact_password(url));
            Ok(())
        }
        other => {
            print!("{HELP}");
            bail!("unknown subcommand `{other}`")
        }
    }
}

/// Fails when a subcommand that takes no arguments was given some.
fn reject_arguments(subcommand: &str, rest: &[String]) -> anyhow::Result<()> {
    match rest.first() {
        Some(unexpected) => {
            bail!("`cargo xtask {subcommand}` takes no arguments, got `{unexpected}`")
        }
        None => Ok(()),
    }
}
