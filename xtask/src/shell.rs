//! Running external commands: echoed, rooted at the workspace, with the
//! environment that earlier steps exported.
//!
//! Invariants: every command runs with the workspace root as its working
//! directory; every command is printed (`$ cargo clippy ...`) on stderr before it
//! runs, like `set -x`, so a CI log shows exactly what ran; a non-zero exit is
//! an error naming the command. Variables exported by a step (`DATABASE_URL`)
//! are passed to each later child explicitly: the process environment itself is
//! never modified, since `std::env::set_var` is unsafe in edition 2024 and the
//! workspace forbids unsafe code.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

/// One external command, built up before it runs.
#[derive(Debug, Clone)]
pub(crate) struct Cmd {
    /// The program actually executed (for cargo, the full path from `$CARGO`).
    program: OsString,
    /// The program's name as echoed; `cargo` rather than a toolchain path.
    shown_program: String,
    /// Each argument, with the text echoed in its place when it must not be
    /// printed as is (a database URL with a password).
    arguments: Vec<(OsString, Option<String>)>,
    /// Variables set for this command only, echoed before the program.
    environment: Vec<(String, String)>,
}

impl Cmd {
    /// A command running `program`, echoed under the same name.
    pub(crate) fn new(program: impl AsRef<OsStr>) -> Self {
        let program = program.as_ref().to_os_string();
        let shown_program = program.to_string_lossy().into_owned();
        Self {
            program,
            shown_program,
            arguments: Vec::new(),
            environment: Vec::new(),
        }
    }

    /// Appends one argument.
    pub(crate) fn arg(mut self, argument: impl AsRef<OsStr>) -> Self {
        self.arguments
            .push((argument.as_ref().to_os_string(), None));
        self
    }

    /// Appends one argument that is echoed as `shown` instead of itself,
    /// so that secrets in it never reach a log.
    pub(crate) fn masked_arg(mut self, argument: impl AsRef<OsStr>, shown: String) -> Self {
        self.arguments
            .push((argument.as_ref().to_os_string(), Some(shown)));
        self
    }

    /// Sets an environment variable for this command only.
    pub(crate) fn env(mut self, name: &str, value: &str) -> Self {
        self.environment.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Appends several arguments.
    pub(crate) fn args<I, S>(mut self, arguments: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        for argument in arguments {
            self = self.arg(argument);
        }
        self
    }
}

impl fmt::Display for Cmd {
    /// Formats the command as a shell line a developer can paste.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, value) in &self.environment {
            write!(formatter, "{name}={} ", shell_quote(value))?;
        }
        formatter.write_str(&shell_quote(&self.shown_program))?;
        for (argument, shown) in &self.arguments {
            let shown = match shown {
                Some(shown) => shown.clone(),
                None => argument.to_string_lossy().into_owned(),
            };
            write!(formatter, " {}", shell_quote(&shown))?;
        }
        Ok(())
    }
}

/// Quotes a word for display when a shell would otherwise split or expand it.
fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word.chars().all(|character| {
            character.is_ascii_alphanumeric() || "-_=./:,@+%^".contains(character)
        });
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The context every step runs in.
#[derive(Debug)]
pub(crate) struct Shell {
    /// The workspace root, where every command runs.
    root: PathBuf,
    /// The cargo binary: `$CARGO` when cargo started us, else `cargo` from PATH.
    cargo: OsString,
    /// Variables exported to every child process started after they were set.
    exported: Vec<(String, String)>,
    /// Whether `CI=true`, which turns some warnings into errors.
    ci: bool,
}

impl Shell {
    /// The shell for this checkout; the root is the parent of xtask's manifest
    /// directory, which cargo bakes in at compile time.
    pub(crate) fn new() -> anyhow::Result<Self> {
        let manifest_directory = Path::new(env!("CARGO_MANIFEST_DIR"));
        let root = manifest_directory
            .parent()
            .context("xtask's manifest directory has no parent")?
            .to_path_buf();
        Ok(Self::at(root))
    }

    /// A shell rooted at `root`, used directly by tests on scratch workspaces.
    pub(crate) fn at(root: PathBuf) -> Self {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
        let ci = std::env::var("CI").is_ok_and(|value| value == "true");
        Self {
            root,
            cargo,
            exported: Vec::new(),
            ci,
        }
    }

    /// The workspace root.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// Whether this run is CI's (`CI=true`).
    pub(crate) fn is_ci(&self) -> bool {
        self.ci
    }

    /// A cargo command, echoed as `cargo ...` whatever `$CARGO` points to.
    pub(crate) fn cargo(&self) -> Cmd {
        let mut command = Cmd::new(&self.cargo);
        command.shown_program = "cargo".to_owned();
        command
    }

    /// Exports `name=value` to every child process started from now on.
    pub(crate) fn export(&mut self, name: &str, value: &str) {
        self.exported.retain(|(existing, _)| existing != name);
        self.exported.push((name.to_owned(), value.to_owned()));
    }

    /// The value exported under `name`, if any.
    pub(crate) fn exported(&self, name: &str) -> Option<&str> {
        self.exported
            .iter()
            .find(|(existing, _)| existing == name)
            .map(|(_, value)| value.as_str())
    }

    /// The `std::process::Command` for `command`, rooted and with the exports.
    fn process(&self, command: &Cmd) -> Command {
        let mut process = Command::new(&command.program);
        process
            .args(command.arguments.iter().map(|(argument, _)| argument))
            .current_dir(&self.root);
        for (name, value) in self.exported.iter().chain(&command.environment) {
            process.env(name, value);
        }
        process
    }

    /// Echoes `command`, runs it with inherited stdio, and fails unless it
    /// exits successfully.
    pub(crate) fn run(&self, command: &Cmd) -> anyhow::Result<()> {
        echo(command);
        let status = self
            .process(command)
            .status()
            .with_context(|| format!("could not start `{command}`"))?;
        if !status.success() {
            bail!("`{command}` failed ({status})");
        }
        Ok(())
    }

    /// Echoes `command`, runs it, and returns its stdout; stderr is inherited
    /// so cargo's own diagnostics stay visible.
    pub(crate) fn read(&self, command: &Cmd) -> anyhow::Result<String> {
        echo(command);
        let output = self
            .process(command)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("could not start `{command}`"))?;
        if !output.status.success() {
            bail!("`{command}` failed ({})", output.status);
        }
        String::from_utf8(output.stdout).with_context(|| format!("`{command}` printed non-UTF-8"))
    }

    /// Echoes `command`, runs it while copying each stdout line to our stdout
    /// as it arrives, and returns the lines; for long runs (benchmarks) whose
    /// output is both watched and parsed.
    pub(crate) fn tee(&self, command: &Cmd) -> anyhow::Result<Vec<String>> {
        echo(command);
        let mut child = self
            .process(command)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("could not start `{command}`"))?;
        let mut lines = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            for line in BufReader::new(stdout).lines() {
                let line = line.with_context(|| format!("reading the output of `{command}`"))?;
                // A closed stdout (`| head`) must not abort the run: the
                // caller may still have cleanup to do.
                let _ = writeln!(std::io::stdout(), "{line}");
                lines.push(line);
            }
        }
        let status = child
            .wait()
            .with_context(|| format!("waiting for `{command}`"))?;
        if !status.success() {
            bail!("`{command}` failed ({status})");
        }
        Ok(lines)
    }

    /// Echoes `command` and runs it with all output discarded, reporting only
    /// whether it succeeded; for probes such as `cargo deny --version`.
    pub(crate) fn probe(&self, command: &Cmd) -> bool {
        echo(command);
        self.process(command)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }
}

/// Prints `$ <command>` on stderr. Write errors are ignored rather than
/// panicking like `eprintln!`, so that cleanup code (dropping a scratch
/// database) still runs its commands when stderr is a closed pipe.
fn echo(command: &Cmd) {
    let _ = writeln!(std::io::stderr(), "$ {command}");
}

/// Finds an executable called `name` in `$PATH`.
pub(crate) fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|directory| directory.join(name))
        .find(|candidate| is_executable(candidate))
}

/// Finds a PostgreSQL client program: first in `$PATH`, then in the newest
/// `/usr/lib/postgresql/<major>/bin`, where Debian installs the programs that
/// it does not link into `/usr/bin` (pgbench among them on some versions).
pub(crate) fn find_postgres_program(name: &str) -> Option<PathBuf> {
    if let Some(found) = find_in_path(name) {
        return Some(found);
    }
    let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let major: u32 = entry.file_name().to_str()?.parse().ok()?;
            let candidate = entry.path().join("bin").join(name);
            is_executable(&candidate).then_some((major, candidate))
        })
        .collect();
    candidates.sort();
    candidates.pop().map(|(_, candidate)| candidate)
}

/// Whether `path` is a file with an execute bit set.
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .is_ok_and(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_only_words_a_shell_would_split() {
        let command = Cmd::new("cargo")
            .args(["nextest", "run", "--workspace"])
            .arg("store::consume code")
            .arg("it's");
        assert_eq!(
            command.to_string(),
            r"cargo nextest run --workspace 'store::consume code' 'it'\''s'"
        );
    }

    #[test]
    fn command_variables_are_shown_and_override_exports() {
        let mut shell = Shell::at(std::env::temp_dir());
        shell.export("LATCHKEY_XTASK_PROBE", "exported");
        let command = Cmd::new("sh")
            .env("LATCHKEY_XTASK_PROBE", "per command")
            .args(["-c", "printf %s \"$LATCHKEY_XTASK_PROBE\""]);
        assert_eq!(
            command.to_string(),
            "LATCHKEY_XTASK_PROBE='per command' sh -c 'printf %s \"$LATCHKEY_XTASK_PROBE\"'"
        );
        assert_eq!(shell.read(&command).unwrap(), "per command");
    }

    #[test]
    fn masked_arguments_are_run_but_not_shown() {
        let command = Cmd::new("echo")
            .arg("--dbname")
            .masked_arg(
                "postgres://u:s3cret@h/db",
                "postgres://u:***@h/db".to_owned(),
            )
            .arg("done");
        assert_eq!(
            command.to_string(),
            "echo --dbname 'postgres://u:***@h/db' done"
        );
        let output = Shell::at(std::env::temp_dir()).read(&command).unwrap();
        assert_eq!(output, "--dbname postgres://u:s3cret@h/db done\n");
    }

    #[test]
    fn cargo_commands_are_shown_as_cargo_whatever_the_path() {
        let mut shell = Shell::at(PathBuf::from("/"));
        shell.cargo = OsString::from("/opt/toolchain/bin/cargo");
        let command = shell.cargo().args(["fmt", "--all"]);
        assert_eq!(command.to_string(), "cargo fmt --all");
        assert_eq!(command.program, OsString::from("/opt/toolchain/bin/cargo"));
    }

    #[test]
    fn exports_replace_earlier_values_and_reach_children() {
        let mut shell = Shell::at(std::env::temp_dir());
        shell.export("LATCHKEY_XTASK_PROBE", "first");
        shell.export("LATCHKEY_XTASK_PROBE", "second");
        assert_eq!(shell.exported("LATCHKEY_XTASK_PROBE"), Some("second"));
        let output = shell
            .read(&Cmd::new("sh").args(["-c", "printf %s \"$LATCHKEY_XTASK_PROBE\""]))
            .unwrap();
        assert_eq!(output, "second");
    }

    #[test]
    fn a_failing_command_is_an_error_naming_it() {
        let shell = Shell::at(std::env::temp_dir());
        let error = shell
            .run(&Cmd::new("sh").args(["-c", "exit 3"]))
            .unwrap_err();
        let message = format!("{error:#}");
        assert!(message.contains("`sh -c 'exit 3'` failed"), "{message}");
        assert!(!shell.probe(&Cmd::new("sh").args(["-c", "exit 3"])));
        assert!(shell.probe(&Cmd::new("sh").args(["-c", "exit 0"])));
    }

    #[test]
    fn tee_returns_each_line() {
        let shell = Shell::at(std::env::temp_dir());
        let lines = shell
            .tee(&Cmd::new("sh").args(["-c", "echo one; echo two"]))
            .unwrap();
        assert_eq!(lines, ["one", "two"]);
    }

    #[test]
    fn find_in_path_finds_sh_and_not_nonsense() {
        assert!(find_in_path("sh").is_some());
        assert!(find_in_path("latchkey-no-such-program").is_none());
    }
}
