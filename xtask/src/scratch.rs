//! Throwaway cargo workspaces for tests that run real cargo commands.
//!
//! Each workspace lives in its own directory under the system temp directory,
//! named by process id and a timestamp so parallel tests never share one, and
//! is removed when the value is dropped. Packages have only path dependencies,
//! so cargo never needs a registry to resolve them.

use std::path::{Path, PathBuf};

/// A scratch workspace, removed on drop.
pub(crate) struct ScratchWorkspace {
    root: PathBuf,
}

impl ScratchWorkspace {
    /// Creates an empty directory for a workspace; `label` names the test.
    pub(crate) fn new(label: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let root = std::env::temp_dir().join(format!(
            "latchkey-xtask-{label}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&root).unwrap();
        Self { root }
    }

    /// Writes the root manifest listing `members`.
    pub(crate) fn workspace(&self, members: &[&str]) {
        let members: Vec<String> = members
            .iter()
            .map(|member| format!("\"{member}\""))
            .collect();
        self.write(
            "Cargo.toml",
            &format!(
                "[workspace]\nresolver = \"3\"\nmembers = [{}]\n",
                members.join(", ")
            ),
        );
    }

    /// Writes a library package in `directory`, with `sections` (features,
    /// dependencies, targets) after its `[package]` table.
    pub(crate) fn package(&self, directory: &str, name: &str, sections: &str) {
        self.write(
            &format!("{directory}/Cargo.toml"),
            &format!(
                "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\
                 publish = false\n\n{sections}\n"
            ),
        );
        self.write(&format!("{directory}/src/lib.rs"), "//! Scratch.\n");
    }

    /// Writes `contents` to `relative`, creating directories as needed.
    pub(crate) fn write(&self, relative: &str, contents: &str) {
        let path = self.root.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }

    /// The workspace root.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }
}

impl Drop for ScratchWorkspace {
    fn drop(&mut self) {
        // Best effort: a leftover directory in /tmp harms nothing.
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
