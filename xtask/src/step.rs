//! Named steps and the loop that runs a list of them in order.
//!
//! `lint` and `test` are tables of `Step`s, so adding a check (a browser test
//! suite, an MCP SDK end-to-end run) is one line in a table. The runner prints
//! a banner per step, stops at the first failure with an error that names the
//! step, and ends with the time each step took.

use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::shell::Shell;

/// What a step receives besides the shell: the user's test filters.
#[derive(Debug, Default, Clone)]
pub(crate) struct StepInput {
    /// Test-name filters from `cargo xtask test -- <FILTER>...`.
    pub(crate) test_filters: Vec<String>,
}

/// One named, ordered piece of work.
#[derive(Clone, Copy)]
pub(crate) struct Step {
    /// The name shown in banners, errors and the timing summary.
    pub(crate) name: &'static str,
    /// The work itself.
    pub(crate) run: fn(&mut Shell, &StepInput) -> anyhow::Result<()>,
}

/// Runs `steps` in order, failing fast with the failing step's name.
pub(crate) fn run_all(
    task: &str,
    shell: &mut Shell,
    input: &StepInput,
    steps: &[Step],
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut timings: Vec<(&'static str, Duration)> = Vec::with_capacity(steps.len());
    for step in steps {
        eprintln!("\n==> {task}: {}", step.name);
        let step_started = Instant::now();
        (step.run)(shell, input).with_context(|| format!("{task}: step `{}` failed", step.name))?;
        timings.push((step.name, step_started.elapsed()));
    }
    eprintln!("\n==> {task}: all {} steps succeeded", timings.len());
    for (name, elapsed) in &timings {
        eprintln!("    {name:<12} {:>7.1}s", elapsed.as_secs_f64());
    }
    eprintln!(
        "    {:<12} {:>7.1}s",
        "total",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn succeed(_: &mut Shell, _: &StepInput) -> anyhow::Result<()> {
        Ok(())
    }

    fn fail(_: &mut Shell, _: &StepInput) -> anyhow::Result<()> {
        anyhow::bail!("the probe failed")
    }

    fn mark(shell: &mut Shell, _: &StepInput) -> anyhow::Result<()> {
        shell.export("LATCHKEY_XTASK_STEP_MARK", "ran");
        Ok(())
    }

    #[test]
    fn steps_run_in_order_and_stop_at_the_first_failure() {
        let mut shell = Shell::at(std::env::temp_dir());
        let steps = [
            Step {
                name: "first",
                run: succeed,
            },
            Step {
                name: "broken",
                run: fail,
            },
            Step {
                name: "never",
                run: mark,
            },
        ];
        let error = run_all("demo", &mut shell, &StepInput::default(), &steps).unwrap_err();
        assert_eq!(
            format!("{error:#}"),
            "demo: step `broken` failed: the probe failed"
        );
        assert_eq!(shell.exported("LATCHKEY_XTASK_STEP_MARK"), None);
    }

    #[test]
    fn all_steps_run_when_none_fails() {
        let mut shell = Shell::at(std::env::temp_dir());
        let steps = [
            Step {
                name: "first",
                run: succeed,
            },
            Step {
                name: "mark",
                run: mark,
            },
        ];
        run_all("demo", &mut shell, &StepInput::default(), &steps).unwrap();
        assert_eq!(shell.exported("LATCHKEY_XTASK_STEP_MARK"), Some("ran"));
    }
}
