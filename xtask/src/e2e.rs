//! `cargo xtask e2e`: the end-to-end suites of the `e2e/` npm package.
//!
//! By default it runs what the `browser` step of `cargo xtask test` runs:
//! Latchkey's pages in headless Chromium against the built binary, on SQLite
//! and Postgres (see `browser`). `--all` runs every suite in `e2e/tests/`,
//! including the fixture checks and the MCP SDK suites; it first makes the
//! Python virtual environment they need (see `mcp`).

use anyhow::bail;

use crate::browser;
use crate::mcp;
use crate::shell::Shell;

/// The parsed command line of `cargo xtask e2e`.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Options {
    /// `--all`: every suite, not only the browser tests.
    pub(crate) all: bool,
}

impl Options {
    /// Parses `[--all]`.
    pub(crate) fn parse(arguments: &[String]) -> anyhow::Result<Self> {
        let mut options = Self::default();
        for argument in arguments {
            match argument.as_str() {
                "--all" => options.all = true,
                other => bail!(
                    "unexpected argument `{other}` to `cargo xtask e2e`; usage: cargo xtask e2e [--all]"
                ),
            }
        }
        Ok(options)
    }
}

/// Runs the chosen suites.
pub(crate) fn run(shell: &mut Shell, options: &Options) -> anyhow::Result<()> {
    if options.all {
        mcp::ensure_venv(shell)?;
        return browser::run_suites(shell, &[browser::ALL_SUITES]);
    }
    browser::run_suites(shell, browser::SUITES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_and_rejects_the_rest() {
        assert_eq!(Options::parse(&[]).unwrap(), Options::default());
        assert_eq!(
            Options::parse(&["--all".to_owned()]).unwrap(),
            Options { all: true }
        );
        assert!(Options::parse(&["--fast".to_owned()]).is_err());
    }
}
