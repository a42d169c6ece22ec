//! The server secret: from `--secret` / `LATCHKEY_SECRET` / the config
//! file, else `<data-dir>/secret`, else generated into that file.
//!
//! Invariants:
//! - a generated secret is 32 random bytes from `ring` (base64url), written
//!   to a file created with mode 0600 in the same `open` call (never
//!   created readable and tightened afterwards), and never printed;
//! - two processes starting at once on an empty data directory agree: the
//!   file is created with `create_new`, and the loser reads the winner's;
//! - a secret file readable by group or others is used, with a warning.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use latchkey_service::ServerSecret;

/// The secret file's name in the data directory.
pub(crate) const SECRET_FILE: &str = "secret";

/// Where the secret came from, for the start-up summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SecretSource {
    /// A flag, the environment or the config file.
    Configured,
    /// An existing file.
    File(PathBuf),
    /// Generated just now into this file.
    Generated(PathBuf),
}

/// Resolves the server secret (see the module docs).
pub(crate) fn load_or_generate(
    configured: Option<&str>,
    data_dir: &Path,
) -> anyhow::Result<(ServerSecret, SecretSource)> {
    if let Some(secret) = configured {
        let secret =
            ServerSecret::new(secret).context("the configured server secret is not usable")?;
        return Ok((secret, SecretSource::Configured));
    }
    let path = data_dir.join(SECRET_FILE);
    match read(&path)? {
        Some(secret) => Ok((secret, SecretSource::File(path))),
        None => {
            let generated = latchkey_service::secrets::generate_server_secret(&ring_random())
                .map_err(|error| anyhow::anyhow!("cannot generate a server secret: {error}"))?;
            let created = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path);
            match created {
                Ok(mut file) => {
                    file.write_all(generated.expose().as_bytes())
                        .and_then(|()| file.write_all(b"\n"))
                        .and_then(|()| file.sync_all())
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    let secret = ServerSecret::new(generated.expose())
                        .context("the generated server secret is not usable")?;
                    Ok((secret, SecretSource::Generated(path)))
                }
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                    // Another process generated it first.
                    let secret = read(&path)?.with_context(|| {
                        format!("{} appeared but could not be read", path.display())
                    })?;
                    Ok((secret, SecretSource::File(path)))
                }
                Err(error) => Err(error)
                    .with_context(|| format!("cannot create the secret file {}", path.display())),
            }
        }
    }
}

/// Reads the secret file, if it exists.
fn read(path: &Path) -> anyhow::Result<Option<ServerSecret>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(error)
                .with_context(|| format!("cannot read the secret file {}", path.display()));
        }
    };
    if text.trim().is_empty() {
        // An empty file is what a crash between create and write leaves.
        anyhow::bail!(
            "the secret file {} is empty: restore the secret the signing keys were encrypted with, \
             or remove the file on a fresh installation",
            path.display()
        );
    }
    if let Ok(metadata) = std::fs::metadata(path)
        && metadata.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            "the secret file is readable by other users; chmod 600 it"
        );
    }
    let secret = ServerSecret::new(&text)
        .with_context(|| format!("the secret in {} is not usable", path.display()))?;
    Ok(Some(secret))
}

fn ring_random() -> ring::rand::SystemRandom {
    ring::rand::SystemRandom::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_secret_is_created_0600_and_reused() {
        let directory = tempfile::tempdir().unwrap();
        let (first, source) = load_or_generate(None, directory.path()).unwrap();
        let path = directory.path().join(SECRET_FILE);
        assert_eq!(source, SecretSource::Generated(path.clone()));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let stored = std::fs::read_to_string(&path).unwrap();
        assert_eq!(stored.trim().len(), 43);

        let (second, source) = load_or_generate(None, directory.path()).unwrap();
        assert_eq!(source, SecretSource::File(path));
        // Same secret: the same key is derived.
        let random = ring_random();
        let sealed = latchkey_service::KeyEncryption::derive(&first)
            .unwrap()
            .seal(&random, "k", b"x")
            .unwrap();
        assert_eq!(
            latchkey_service::KeyEncryption::derive(&second)
                .unwrap()
                .open("k", &sealed)
                .unwrap(),
            b"x"
        );
    }

    #[test]
    fn a_configured_secret_wins_and_must_be_long_enough() {
        let directory = tempfile::tempdir().unwrap();
        let (_, source) = load_or_generate(Some(&"s".repeat(40)), directory.path()).unwrap();
        assert_eq!(source, SecretSource::Configured);
        assert!(!directory.path().join(SECRET_FILE).exists());
        let error = load_or_generate(Some("short"), directory.path()).unwrap_err();
        assert!(format!("{error:#}").contains("at least 32"), "{error:#}");
    }

    #[test]
    fn an_empty_secret_file_is_an_error_not_a_new_secret() {
        let directory = tempfile::tempdir().unwrap();
        std::fs::write(directory.path().join(SECRET_FILE), "\n").unwrap();
        let error = load_or_generate(None, directory.path()).unwrap_err();
        assert!(error.to_string().contains("is empty"), "{error}");
    }
}
