//! The browser tests: Latchkey's pages in a real headless Chromium, driven by
//! playwright-core from the `e2e/` npm package against the built `latchkey`
//! binary, on SQLite and on Postgres (`e2e/tests/authorize.test.mjs`, and
//! `e2e/tests/cimd.test.mjs` for Client ID Metadata Document clients).
//!
//! What the step does, in order:
//! 1. makes sure Debian's Chromium is installed at `/usr/bin/chromium` (or
//!    `CHROMIUM_PATH`): when it is missing, `apt-get install -y chromium` runs
//!    as root, or through `sudo -n` when that works; otherwise the step fails
//!    with the command to run. playwright-core never downloads a browser;
//! 2. `npm ci --prefix e2e`, only when `e2e/node_modules` is missing or older
//!    than `e2e/package-lock.json` (npm writes `node_modules/.package-lock.json`
//!    on every install), so a warm run costs nothing;
//! 3. `cargo build --workspace --all-features --bin latchkey`, and passes
//!    the binary as `LATCHKEY_BIN`. Resolving features for the whole
//!    workspace, as the test step does, makes this a no-op after the tests
//!    (which built the same binary) instead of a rebuild of every crate with
//!    another feature set;
//! 4. `node --test` on the suites. The Postgres server is the `DATABASE_URL`
//!    an earlier step exported; the suite creates and drops its own database
//!    there with `psql`.
//!
//! Nothing is skipped: a missing Chromium, Node or Postgres is an error.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context as _, bail};

use crate::postgres;
use crate::shell::{Cmd, Shell, find_in_path};
use crate::step::StepInput;

/// The suites the `browser` step runs, relative to the workspace root.
pub(crate) const SUITES: &[&str] = &["e2e/tests/authorize.test.mjs", "e2e/tests/cimd.test.mjs"];

/// Every suite of the e2e package (`cargo xtask e2e --all`).
pub(crate) const ALL_SUITES: &str = "e2e/tests/";

/// Where Debian installs Chromium.
const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";

/// The step of `cargo xtask test`.
pub(crate) fn step(shell: &mut Shell, _: &StepInput) -> anyhow::Result<()> {
    run_suites(shell, SUITES)
}

/// Prepares Chromium, the npm packages and the binary, then runs `suites`.
pub(crate) fn run_suites(shell: &mut Shell, suites: &[&str]) -> anyhow::Result<()> {
    if shell.exported(postgres::DATABASE_URL).is_none() {
        postgres::discover_and_export(shell)?;
    }
    ensure_chromium(shell)?;
    let node = find_in_path("node").context(
        "Node.js is not installed; the browser tests need Node 20 or later (apt-get install -y nodejs npm)",
    )?;
    ensure_npm_packages(shell)?;
    shell.run(&shell.cargo().args([
        "build",
        "--workspace",
        "--all-features",
        "--bin",
        "latchkey",
    ]))?;
    let configured = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from);
    let binary = target_directory(shell.root(), configured)
        .join("debug")
        .join("latchkey");
    if !binary.is_file() {
        bail!("the build produced no binary at {}", binary.display());
    }
    let mut command = Cmd::new(node)
        .env("LATCHKEY_BIN", &binary.display().to_string())
        .arg("--test")
        .arg("--test-concurrency=1");
    for suite in suites {
        command = command.arg(suite);
    }
    shell.run(&command)
}

/// Cargo's target directory: `CARGO_TARGET_DIR` (`configured`; relative
/// to the workspace root when relative), or `<root>/target`.
fn target_directory(root: &Path, configured: Option<PathBuf>) -> PathBuf {
    match configured {
        Some(directory) if directory.is_absolute() => directory,
        Some(directory) => root.join(directory),
        None => root.join("target"),
    }
}

/// Installs Debian's Chromium when it is missing (module docs).
fn ensure_chromium(shell: &mut Shell) -> anyhow::Result<()> {
    let chromium = std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| DEFAULT_CHROMIUM.to_owned());
    if Path::new(&chromium).is_file() {
        eprintln!("Chromium is installed at {chromium}");
        return Ok(());
    }
    if chromium != DEFAULT_CHROMIUM {
        bail!("CHROMIUM_PATH is {chromium}, which does not exist");
    }
    let install = "apt-get update && apt-get install -y chromium";
    let root = shell
        .read(&Cmd::new("id").arg("-u"))
        .is_ok_and(|uid| uid.trim() == "0");
    let prefix: Vec<&str> = if root {
        Vec::new()
    } else if find_in_path("sudo").is_some() && shell.probe(&Cmd::new("sudo").args(["-n", "true"]))
    {
        vec!["sudo", "-n"]
    } else {
        bail!(
            "Chromium is missing at {DEFAULT_CHROMIUM} and this user can neither install \
             packages nor use sudo without a password; run as root: {install}"
        );
    };
    let apt = |arguments: &[&str]| -> Cmd {
        let mut words: Vec<&str> = prefix.clone();
        words.extend_from_slice(&["env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]);
        words.extend_from_slice(arguments);
        let (program, rest) = words
            .split_first()
            .map_or(("env", &[][..]), |(first, rest)| (*first, rest));
        Cmd::new(program).args(rest)
    };
    shell
        .run(&apt(&["update"]))
        .context("apt-get update failed; Chromium is needed for the browser tests")?;
    shell
        .run(&apt(&[
            "install",
            "-y",
            "--no-install-recommends",
            "chromium",
        ]))
        .with_context(|| format!("installing Chromium failed; run: {install}"))?;
    if !Path::new(DEFAULT_CHROMIUM).is_file() {
        bail!("apt-get installed chromium but {DEFAULT_CHROMIUM} does not exist");
    }
    Ok(())
}

/// The modification time of `path`, if it exists.
fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path)
        .and_then(|metadata| metadata.modified())
        .ok()
}

/// Whether `npm ci` must run: no installed tree, or one older than the
/// lockfile.
pub(crate) fn npm_install_needed(e2e: &Path) -> bool {
    let installed = modified(&e2e.join("node_modules").join(".package-lock.json"));
    let locked = modified(&e2e.join("package-lock.json"));
    match (installed, locked) {
        (Some(installed), Some(locked)) => installed < locked,
        _ => true,
    }
}

/// `npm ci --prefix e2e` when needed.
fn ensure_npm_packages(shell: &mut Shell) -> anyhow::Result<()> {
    let e2e = shell.root().join("e2e");
    if !npm_install_needed(&e2e) {
        eprintln!("e2e/node_modules is up to date with e2e/package-lock.json");
        return Ok(());
    }
    let npm = find_in_path("npm").context("npm is not installed (apt-get install -y npm)")?;
    shell.run(&Cmd::new(npm).args([
        "ci",
        "--prefix",
        "e2e",
        "--no-audit",
        "--no-fund",
        "--loglevel=error",
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn npm_runs_only_when_the_tree_is_missing_or_stale() {
        let scratch =
            std::env::temp_dir().join(format!("latchkey-xtask-npm-{}", std::process::id()));
        let modules = scratch.join("node_modules");
        std::fs::create_dir_all(&modules).unwrap();
        let lockfile = scratch.join("package-lock.json");
        let installed = modules.join(".package-lock.json");
        std::fs::write(&lockfile, "{}").unwrap();
        assert!(npm_install_needed(&scratch), "no installed tree");

        std::fs::write(&installed, "{}").unwrap();
        let old = SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&lockfile)
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert!(
            !npm_install_needed(&scratch),
            "installed after the lockfile changed"
        );

        std::fs::File::options()
            .write(true)
            .open(&installed)
            .unwrap()
            .set_modified(old - Duration::from_secs(60))
            .unwrap();
        assert!(npm_install_needed(&scratch), "the lockfile is newer");
        std::fs::remove_dir_all(&scratch).unwrap();
    }

    #[test]
    fn the_target_directory_follows_cargo() {
        let root = Path::new("/workspace");
        assert_eq!(target_directory(root, None), Path::new("/workspace/target"));
        assert_eq!(
            target_directory(root, Some(PathBuf::from("build"))),
            Path::new("/workspace/build")
        );
        assert_eq!(
            target_directory(root, Some(PathBuf::from("/var/cache/target"))),
            Path::new("/var/cache/target")
        );
    }
}
