//! `cargo xtask test`: the static checks, then every test in the workspace.
//!
//! The steps after the lint checks are `TEST_STEPS`, run in order. Postgres
//! discovery comes first and exports `DATABASE_URL` to every later child, so
//! the tests always meet a real server and never skip silently. The doctests
//! run before the nextest run (nextest cannot run doctests) so that the last
//! test-runner summary in a CI log is the one counting the whole workspace.
//!
//! The `npm` step (`npm ci --prefix e2e` when `e2e/node_modules` is missing
//! or stale) comes before the Rust tests, because some of them spawn Node
//! fixtures: the upstream OpenID provider of the federation tests.
//!
//! The `browser` step comes next to last: Latchkey's pages in headless
//! Chromium against the built binary on SQLite and Postgres (see `browser`);
//! it installs Chromium when it is missing. The `mcp` step follows: the
//! official MCP SDK clients through `latchkey guard` and
//! `latchkey serve --guard-upstream` (see `mcp`), with the Python venv it
//! makes when missing.

use anyhow::bail;

use crate::browser;
use crate::lint;
use crate::mcp;
use crate::postgres;
use crate::shell::Shell;
use crate::step::{self, Step, StepInput};

/// The steps after the lint checks, in order.
const TEST_STEPS: &[Step] = &[
    Step {
        name: "postgres",
        run: postgres_step,
    },
    Step {
        name: "doctests",
        run: doctests,
    },
    // Before `tests`: the federation tests spawn the upstream OpenID provider
    // fixture (e2e/fixtures/upstream-op.mjs), which needs e2e/node_modules.
    Step {
        name: "npm",
        run: browser::npm_step,
    },
    Step {
        name: "tests",
        run: workspace_tests,
    },
    Step {
        name: "browser",
        run: browser::step,
    },
    Step {
        name: "mcp",
        run: mcp::step,
    },
];

/// The parsed command line of `cargo xtask test`.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Options {
    /// `--skip-lint`: run only the test steps.
    pub(crate) skip_lint: bool,
    /// Everything after `--`: test-name filters for the test runners.
    pub(crate) filters: Vec<String>,
}

impl Options {
    /// Parses `[--skip-lint] [-- <FILTER>...]`.
    pub(crate) fn parse(arguments: &[String]) -> anyhow::Result<Self> {
        let mut options = Self::default();
        let mut remaining = arguments.iter();
        while let Some(argument) = remaining.next() {
            match argument.as_str() {
                "--skip-lint" => options.skip_lint = true,
                "--" => {
                    options.filters = remaining.cloned().collect();
                    break;
                }
                other => bail!(
                    "unexpected argument `{other}` to `cargo xtask test`; \
                     usage: cargo xtask test [--skip-lint] [-- <FILTER>...]"
                ),
            }
        }
        Ok(options)
    }
}

/// Runs the lint checks (unless skipped) and then the test steps.
pub(crate) fn run(shell: &mut Shell, options: &Options) -> anyhow::Result<()> {
    let lint_steps: &[Step] = if options.skip_lint { &[] } else { lint::CHECKS };
    let steps: Vec<Step> = lint_steps.iter().chain(TEST_STEPS).copied().collect();
    let input = StepInput {
        test_filters: options.filters.clone(),
    };
    step::run_all("test", shell, &input, &steps)
}

/// Finds Postgres and exports `DATABASE_URL` to the later steps.
fn postgres_step(shell: &mut Shell, _: &StepInput) -> anyhow::Result<()> {
    postgres::discover_and_export(shell)
}

/// `cargo test --doc`, with the filters passed to libtest.
fn doctests(shell: &mut Shell, input: &StepInput) -> anyhow::Result<()> {
    let mut command = shell
        .cargo()
        .args(["test", "--workspace", "--all-features", "--doc"]);
    if !input.test_filters.is_empty() {
        command = command.arg("--").args(&input.test_filters);
    }
    shell.run(&command)
}

/// The workspace tests under cargo-nextest, or `cargo test` without it.
fn workspace_tests(shell: &mut Shell, input: &StepInput) -> anyhow::Result<()> {
    let command = if shell.probe(&shell.cargo().args(["nextest", "--version"])) {
        let mut command = shell
            .cargo()
            .args(["nextest", "run", "--workspace", "--all-features"]);
        if shell.is_ci() {
            // CI wants every failure in one log, not just the first.
            command = command.arg("--no-fail-fast");
        }
        // nextest takes name filters as plain positional arguments.
        command.args(&input.test_filters)
    } else {
        eprintln!("cargo-nextest is not installed; falling back to `cargo test`");
        let mut command = shell
            .cargo()
            .args(["test", "--workspace", "--all-features"]);
        if shell.is_ci() {
            command = command.arg("--no-fail-fast");
        }
        // libtest accepts several filters after `--`; cargo accepts only one
        // before it.
        if !input.test_filters.is_empty() {
            command = command.arg("--").args(&input.test_filters);
        }
        command
    };
    shell.run(&command)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn parses_flags_and_filters() {
        assert_eq!(Options::parse(&[]).unwrap(), Options::default());
        assert_eq!(
            Options::parse(&words("--skip-lint -- store:: --exact")).unwrap(),
            Options {
                skip_lint: true,
                filters: words("store:: --exact"),
            }
        );
        assert_eq!(
            Options::parse(&words("-- pkce")).unwrap(),
            Options {
                skip_lint: false,
                filters: words("pkce"),
            }
        );
    }

    #[test]
    fn rejects_unknown_arguments() {
        let error = Options::parse(&words("pkce")).unwrap_err();
        assert!(error.to_string().contains("unexpected argument `pkce`"));
    }
}
