//! `cargo xtask lint`: formatting, clippy, tidy, layering and cargo-deny.
//!
//! `CHECKS` are the static checks that `cargo xtask test` also runs first;
//! cargo-deny is run only by `lint`, and only when it is installed, because it
//! is a separate `cargo install` that takes minutes to compile on CI's 2 cores.
//!
//! cargo-deny's `advisories` check is never run by default: it must fetch the
//! RustSec advisory database from GitHub, and these machines reach only the
//! package registries, so it would always fail here. Run
//! `cargo deny check advisories` by hand on a machine that can fetch it.

use crate::layering;
use crate::shell::Shell;
use crate::step::{self, Step, StepInput};
use crate::tidy;

/// The static checks, in order: cheapest first, so a formatting slip fails in
/// a second rather than after a clippy build.
pub(crate) const CHECKS: &[Step] = &[
    Step {
        name: "fmt",
        run: fmt,
    },
    Step {
        name: "tidy",
        run: tidy_step,
    },
    Step {
        name: "layering",
        run: layering_step,
    },
    Step {
        name: "clippy",
        run: clippy,
    },
];

/// What `lint` runs beyond `CHECKS`.
const LINT_ONLY: &[Step] = &[Step {
    name: "cargo-deny",
    run: cargo_deny,
}];

/// Runs every lint step.
pub(crate) fn run(shell: &mut Shell) -> anyhow::Result<()> {
    let steps: Vec<Step> = CHECKS.iter().chain(LINT_ONLY).copied().collect();
    step::run_all("lint", shell, &StepInput::default(), &steps)
}

/// `cargo fmt --all -- --check`.
fn fmt(shell: &mut Shell, _: &StepInput) -> anyhow::Result<()> {
    shell.run(&shell.cargo().args(["fmt", "--all", "--", "--check"]))
}

/// Clippy over every target and feature, with warnings as errors.
fn clippy(shell: &mut Shell, _: &StepInput) -> anyhow::Result<()> {
    shell.run(&shell.cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ]))
}

/// The tidy check (`tidy`).
fn tidy_step(shell: &mut Shell, _: &StepInput) -> anyhow::Result<()> {
    tidy::run(shell)
}

/// The crate-layering check (`layering`).
fn layering_step(shell: &mut Shell, _: &StepInput) -> anyhow::Result<()> {
    layering::run(shell)
}

/// `cargo deny check licenses bans sources` when cargo-deny is installed.
fn cargo_deny(shell: &mut Shell, _: &StepInput) -> anyhow::Result<()> {
    if !shell.probe(&shell.cargo().args(["deny", "--version"])) {
        eprintln!(
            "cargo-deny is not installed, so the licenses/bans/sources check was skipped; \
             install it with `cargo install cargo-deny --locked`"
        );
        return Ok(());
    }
    shell.run(
        &shell
            .cargo()
            .args(["deny", "check", "licenses", "bans", "sources"]),
    )
}
