//! `latchkey keys list|rotate`: the operator's signing-key commands.
//!
//! `list` reads the key records only (no secret needed). `rotate` loads the
//! keys with the server secret, so a wrong secret is refused before any new
//! key is stored, then generates a key with the configured algorithm and
//! makes it active. The previous key stays in the JWKS until
//! `now + access-token lifetime + key reload interval`; running servers
//! switch to the new key within their key reload interval.

use std::io::Write as _;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use latchkey_service::{Clock as _, KeyEncryption, KeyManager, KeySettings, SystemClock};
use latchkey_store::KeyState;
use time::OffsetDateTime;

use crate::config::{CommonArgs, SigningArgs};
use crate::secret::load_or_generate;

/// `latchkey keys …`.
#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// List the signing keys and their states.
    List(ListArgs),
    /// Generate a new signing key and make it the active one.
    Rotate(RotateArgs),
}

/// Arguments of `latchkey keys list`.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    common: CommonArgs,
}

/// Arguments of `latchkey keys rotate`.
#[derive(Debug, Args)]
pub(crate) struct RotateArgs {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    signing: SigningArgs,
}

/// `2026-11-23 12:00:00Z`.
pub(crate) fn timestamp(instant: OffsetDateTime) -> String {
    let utc = instant.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
        utc.year(),
        u8::from(utc.month()),
        utc.day(),
        utc.hour(),
        utc.minute(),
        utc.second()
    )
}

fn optional(instant: Option<OffsetDateTime>) -> String {
    instant.map_or_else(|| "-".to_owned(), timestamp)
}

fn state(state: KeyState) -> &'static str {
    state.as_str()
}

/// Runs a keys command.
pub(crate) async fn run(command: &KeysCommand) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match command {
        KeysCommand::List(args) => {
            let store = args.common.open_store().await?;
            let keys = KeyManager::list(store.as_ref()).await?;
            writeln!(
                out,
                "{:<24} {:<6} {:<8} {:<21} {:<21} {:<21} NOT_AFTER",
                "KID", "ALG", "STATE", "CREATED", "ACTIVATED", "RETIRED"
            )?;
            for key in keys {
                writeln!(
                    out,
                    "{:<24} {:<6} {:<8} {:<21} {:<21} {:<21} {}",
                    key.kid,
                    key.alg,
                    state(key.state),
                    timestamp(key.created_at),
                    optional(key.activated_at),
                    optional(key.retired_at),
                    optional(key.not_after)
                )?;
            }
        }
        KeysCommand::Rotate(args) => {
            let common = args.common.resolve()?;
            crate::logging::init(common.log_format);
            let (algorithm, access_token_lifetime, reload_interval) =
                crate::serve::signing(&args.signing, &common.file)?;
            crate::store::create_data_dir(&common.data_dir)?;
            let store = common.open_store().await?;
            let configured = args
                .signing
                .secret
                .as_deref()
                .or(common.file.secret.as_deref());
            let (secret, _) = load_or_generate(configured, &common.data_dir)?;
            let clock = SystemClock;
            let keys = KeyManager::load_or_create(
                Arc::clone(&store),
                KeyEncryption::derive(&secret)?,
                KeySettings {
                    algorithm,
                    access_token_lifetime,
                    reload_interval,
                },
                clock.now(),
            )
            .await
            .context("cannot load the signing keys")?;
            let previous = keys.active_kid();
            let rotated = keys.rotate(clock.now()).await?;
            let retired = KeyManager::list(store.as_ref())
                .await?
                .into_iter()
                .find(|key| key.kid == previous);
            writeln!(out, "active key: {} ({})", rotated.kid, rotated.alg)?;
            if let Some(retired) = retired {
                writeln!(
                    out,
                    "retired key: {} ({}), published until {}",
                    retired.kid,
                    retired.alg,
                    optional(retired.not_after)
                )?;
            }
            writeln!(
                out,
                "Running servers switch to the new key within their key reload interval."
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_and_zero_padded() {
        let instant = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        assert_eq!(timestamp(instant), "2027-01-15 08:00:00Z");
        assert_eq!(optional(None), "-");
    }
}
