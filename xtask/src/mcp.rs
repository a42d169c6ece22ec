//! The MCP step: the official MCP SDK clients (TypeScript and Python) through
//! the real `latchkey` binary, as `latchkey guard` plus `latchkey serve` and
//! as `latchkey serve --guard-upstream` (`e2e/tests/mcp.test.mjs`).
//!
//! Besides what the browser step prepares (Chromium, `npm ci`, the binary),
//! it needs the Python SDK in a virtual environment, `target/e2e-venv`, made
//! from `e2e/python/requirements.txt` (every package pinned). The venv is
//! (re)built only when it is missing or was built from other requirements:
//! a copy of the requirements it was built from sits next to it and is
//! compared byte for byte, so a warm run costs nothing. pip reads no stdin
//! and asks nothing; a failure names the command to run by hand.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::browser;
use crate::shell::{Cmd, Shell, find_in_path};
use crate::step::StepInput;

/// The suite the `mcp` step runs, relative to the workspace root.
pub(crate) const SUITE: &str = "e2e/tests/mcp.test.mjs";

/// The requirements file, relative to the workspace root.
const REQUIREMENTS: &str = "e2e/python/requirements.txt";

/// The copy of the requirements a venv was built from, inside the venv.
const STAMP: &str = "latchkey-requirements.txt";

/// The step of `cargo xtask test`.
pub(crate) fn step(shell: &mut Shell, _: &StepInput) -> anyhow::Result<()> {
    ensure_venv(shell)?;
    browser::run_suites(shell, &[SUITE])
}

/// Where the venv lives: `<root>/target/e2e-venv`, where the e2e suites
/// look for it (`E2E_VENV` overrides that in the suites, not here).
pub(crate) fn venv_directory(root: &Path) -> PathBuf {
    root.join("target").join("e2e-venv")
}

/// Whether the venv must be (re)built: no interpreter, no stamp, or a
/// stamp that differs from the requirements.
pub(crate) fn venv_stale(venv: &Path, requirements: &[u8]) -> bool {
    if !venv.join("bin").join("python").is_file() {
        return true;
    }
    std::fs::read(venv.join(STAMP)).map_or(true, |stamp| stamp != requirements)
}

/// Builds `target/e2e-venv` when it is missing or stale.
pub(crate) fn ensure_venv(shell: &mut Shell) -> anyhow::Result<()> {
    let root = shell.root().to_path_buf();
    let requirements_path = root.join(REQUIREMENTS);
    let requirements = std::fs::read(&requirements_path)
        .with_context(|| format!("cannot read {}", requirements_path.display()))?;
    let venv = venv_directory(&root);
    if !venv_stale(&venv, &requirements) {
        eprintln!("{} is up to date with {REQUIREMENTS}", venv.display());
        return Ok(());
    }
    let hint = format!(
        "python3 -m venv {venv} && {venv}/bin/pip install -r {REQUIREMENTS}",
        venv = venv.display()
    );
    let python = find_in_path("python3").with_context(|| {
        format!("python3 is not installed; the MCP step needs Python 3.10 or later ({hint})")
    })?;
    if venv.exists() {
        std::fs::remove_dir_all(&venv)
            .with_context(|| format!("cannot remove the stale venv {}", venv.display()))?;
    }
    shell
        .run(
            &Cmd::new(python)
                .args(["-m", "venv"])
                .arg(venv.display().to_string()),
        )
        .with_context(|| format!("creating the Python venv failed; try: {hint}"))?;
    let pip = venv.join("bin").join("pip");
    shell
        .run(
            &Cmd::new(pip)
                .args([
                    "install",
                    "--disable-pip-version-check",
                    "--no-input",
                    "--quiet",
                    "-r",
                ])
                .arg(requirements_path.display().to_string()),
        )
        .with_context(|| format!("installing the MCP Python SDK failed; try: {hint}"))?;
    std::fs::write(venv.join(STAMP), &requirements)
        .with_context(|| format!("cannot write {}", venv.join(STAMP).display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_venv_is_rebuilt_when_missing_or_built_from_other_requirements() {
        let scratch =
            std::env::temp_dir().join(format!("latchkey-xtask-venv-{}", std::process::id()));
        let venv = scratch.join("e2e-venv");
        assert!(venv_stale(&venv, b"mcp==2.3.0\n"), "no venv");
        std::fs::create_dir_all(venv.join("bin")).unwrap();
        std::fs::write(venv.join("bin").join("python"), "").unwrap();
        assert!(venv_stale(&venv, b"mcp==2.3.0\n"), "no stamp");
        std::fs::write(venv.join(STAMP), b"mcp==2.3.0\n").unwrap();
        assert!(!venv_stale(&venv, b"mcp==2.3.0\n"), "up to date");
        assert!(venv_stale(&venv, b"mcp==2.4.0\n"), "other requirements");
        std::fs::remove_dir_all(&scratch).unwrap();
        assert_eq!(
            venv_directory(Path::new("/w")),
            Path::new("/w/target/e2e-venv")
        );
    }
}
