//! The tidy check: source-hygiene rules that rustc and clippy do not enforce.
//!
//! Every `.rs` file under `crates/` and `xtask/` (tracked or not; `target/`,
//! `node_modules/` and hidden directories are skipped) must:
//! - open with a `//!` module doc as its very first line, saying what the file
//!   is for and what it guarantees (STYLE.md). No attribute or blank line may
//!   come first: a fixed rule is easier to check and to follow than "after
//!   the inner attributes";
//! - contain none of the markers in `FORBIDDEN`: unfinished-code macros,
//!   ignored or panic-expecting tests, ignored doctests, and the debug-print
//!   macro.
//!
//! The markers are assembled with `concat!` so that this file does not flag
//! itself; the same trick keeps the test fixtures below clean.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use crate::shell::Shell;

/// The directories under the workspace root whose `.rs` files are checked.
const CHECKED_DIRECTORIES: &[&str] = &["crates", "xtask"];

/// Directory names never descended into.
const SKIPPED_DIRECTORIES: &[&str] = &["target", "node_modules"];

/// Text that must appear nowhere in a `.rs` file, and why.
const FORBIDDEN: &[(&str, &str)] = &[
    (
        concat!("to", "do!("),
        "unfinished code: finish it or track it in an issue",
    ),
    (
        concat!("unimple", "mented!("),
        "unfinished code: finish it or track it in an issue",
    ),
    (
        concat!("#[ig", "nore"),
        "an ignored test: assert today's behaviour and add a FIXME instead",
    ),
    (
        concat!("should", "_panic"),
        "a panic-expecting test: return and assert a Result instead",
    ),
    (
        concat!("db", "g!("),
        "a debug print: remove it before committing",
    ),
    (
        concat!("```ig", "nore"),
        "an ignored doctest: use ```no_run (compiled, not run) or ```text",
    ),
];

/// One rule broken at one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    /// The file, relative to the workspace root.
    pub(crate) path: PathBuf,
    /// The 1-based line number.
    pub(crate) line: usize,
    /// What is wrong.
    pub(crate) message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{}:{}: {}",
            self.path.display(),
            self.line,
            self.message
        )
    }
}

/// Runs the check on the workspace, printing every problem found.
pub(crate) fn run(shell: &Shell) -> anyhow::Result<()> {
    let (file_count, problems) = check_workspace(shell.root())?;
    if problems.is_empty() {
        eprintln!("tidy: {file_count} .rs files checked, no problems");
        return Ok(());
    }
    for problem in &problems {
        eprintln!("{problem}");
    }
    bail!(
        "tidy found {} problem(s) in {file_count} .rs files",
        problems.len()
    )
}

/// Checks every `.rs` file under the checked directories of `root`; returns
/// how many files were read and the problems, sorted by path.
pub(crate) fn check_workspace(root: &Path) -> anyhow::Result<(usize, Vec<Problem>)> {
    let mut files = Vec::new();
    for directory in CHECKED_DIRECTORIES {
        let directory = root.join(directory);
        if directory.is_dir() {
            collect_rust_files(&directory, &mut files)?;
        }
    }
    files.sort();
    let mut problems = Vec::new();
    for file in &files {
        let contents =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let relative = file.strip_prefix(root).unwrap_or(file);
        problems.extend(check_file(relative, &contents));
    }
    Ok((files.len(), problems))
}

/// Appends every `.rs` file below `directory` to `files`.
fn collect_rust_files(directory: &Path, files: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let entries =
        std::fs::read_dir(directory).with_context(|| format!("listing {}", directory.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", directory.display()))?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let file_type = entry
            .file_type()
            .with_context(|| format!("inspecting {}", path.display()))?;
        if file_type.is_dir() {
            if !name.starts_with('.') && !SKIPPED_DIRECTORIES.contains(&name.as_ref()) {
                collect_rust_files(&path, files)?;
            }
        } else if file_type.is_file() && name.ends_with(".rs") {
            files.push(path);
        }
    }
    Ok(())
}

/// The problems in one file's `contents`; `path` is only used in reports.
pub(crate) fn check_file(path: &Path, contents: &str) -> Vec<Problem> {
    let mut problems = Vec::new();
    let first_line = contents.lines().next().unwrap_or("");
    if !first_line.starts_with("//!") {
        problems.push(Problem {
            path: path.to_path_buf(),
            line: 1,
            message: "the file must open with a `//!` doc comment saying its purpose and \
                      invariants"
                .to_owned(),
        });
    }
    for (index, line) in contents.lines().enumerate() {
        for (marker, reason) in FORBIDDEN {
            if line.contains(marker) {
                problems.push(Problem {
                    path: path.to_path_buf(),
                    line: index + 1,
                    message: format!("\"{marker}\" is not allowed: {reason}"),
                });
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scratch::ScratchWorkspace;

    /// The forbidden marker at `index` in `FORBIDDEN`.
    fn marker(index: usize) -> &'static str {
        FORBIDDEN[index].0
    }

    #[test]
    fn a_documented_clean_file_passes() {
        let contents = "//! Purpose and invariants.\n\nfn main() {}\n";
        assert_eq!(check_file(Path::new("a.rs"), contents), []);
    }

    #[test]
    fn a_missing_module_doc_is_reported_on_line_one() {
        for contents in [
            "fn main() {}\n",
            "\n//! Too late.\n",
            "#![allow(dead_code)]\n//! After an attribute.\n",
            "/// An item doc, not a module doc.\nfn main() {}\n",
            "",
        ] {
            let problems = check_file(Path::new("src/lib.rs"), contents);
            assert_eq!(problems.len(), 1, "{contents:?}");
            assert_eq!(problems[0].line, 1);
            assert_eq!(
                problems[0].to_string(),
                "src/lib.rs:1: the file must open with a `//!` doc comment saying its \
                 purpose and invariants"
            );
        }
    }

    #[test]
    fn every_forbidden_marker_is_reported_with_its_line() {
        for index in 0..FORBIDDEN.len() {
            let contents = format!("//! Doc.\nfn f() {{}}\n    let x = {}\n", marker(index));
            let problems = check_file(Path::new("f.rs"), &contents);
            assert_eq!(problems.len(), 1, "{contents}");
            assert_eq!(problems[0].line, 3);
            assert!(
                problems[0]
                    .message
                    .starts_with(&format!("\"{}\" is not allowed", marker(index))),
                "{}",
                problems[0].message
            );
        }
    }

    #[test]
    fn two_markers_on_one_line_are_two_problems() {
        let contents = format!("//! Doc.\n{} {}\n", marker(0), marker(4));
        assert_eq!(check_file(Path::new("f.rs"), &contents).len(), 2);
    }

    #[test]
    fn the_walk_checks_crates_and_xtask_but_skips_target_and_hidden_directories() {
        let scratch = ScratchWorkspace::new("tidy");
        scratch.write("crates/good/src/lib.rs", "//! Fine.\n");
        scratch.write("crates/bad/src/lib.rs", "pub fn undocumented() {}\n");
        scratch.write(
            "crates/bad/tests/it/main.rs",
            &format!("//! Doc.\n{}\n", marker(2)),
        );
        scratch.write("xtask/src/main.rs", "fn main() {}\n");
        scratch.write("crates/bad/target/debug/build/out.rs", "no doc\n");
        scratch.write("crates/bad/.hidden/gen.rs", "no doc\n");
        scratch.write("crates/web/node_modules/pkg/x.rs", "no doc\n");
        scratch.write("docs/not-checked.rs", "no doc\n");
        scratch.write("crates/bad/README.md", "not rust\n");

        let (file_count, problems) = check_workspace(scratch.root()).unwrap();

        assert_eq!(file_count, 4);
        let reported: Vec<String> = problems
            .iter()
            .map(|problem| format!("{}:{}", problem.path.display(), problem.line))
            .collect();
        assert_eq!(
            reported,
            [
                "crates/bad/src/lib.rs:1",
                "crates/bad/tests/it/main.rs:2",
                "xtask/src/main.rs:1",
            ]
        );
    }
}
