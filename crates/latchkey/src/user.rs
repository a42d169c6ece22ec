//! `latchkey user add|list|disable|enable|passwd|link|unlink`: the
//! operator's account commands.
//!
//! `link` and `unlink` connect a user to an upstream (OpenID Connect)
//! identity by hand, so that signing in through that provider signs in as
//! the user (docs/federation.md). The issuer and subject are stored
//! exactly as given, since ID tokens are compared byte-for-byte; an
//! identity linked to another user is never moved: the error names that
//! user, and nothing is linked.
//!
//! Passwords are read from standard input only (`--password-stdin`, one
//! line, the line break removed), never from the command line, where they
//! would be visible in process lists and shell history. The policy (at
//! least 8 characters, at most 1024 bytes) is the service's
//! (`latchkey_service::accounts`). Disabling a user or changing a password
//! signs the user out everywhere; refresh tokens already issued keep
//! working until revoked from the account page or by the client.

use std::io::{BufRead as _, Write as _};
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use latchkey_protocol::secret::SecretString;
use latchkey_service::SystemClock;
use latchkey_service::accounts::UserAdmin;

use crate::config::CommonArgs;

/// `latchkey user …`.
#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// Create a user who signs in with email and password.
    Add(AddArgs),
    /// List every user.
    List(ListArgs),
    /// Stop a user from signing in (ends the user's browser sessions).
    Disable(TargetArgs),
    /// Let a disabled user sign in again.
    Enable(TargetArgs),
    /// Set a user's password (ends the user's browser sessions).
    Passwd(PasswdArgs),
    /// Link an upstream identity (issuer and subject) to a user.
    Link(LinkArgs),
    /// Unlink a user's upstream identities at an issuer (or the one subject).
    Unlink(UnlinkArgs),
}

/// Arguments of `latchkey user add`.
#[derive(Debug, Args)]
pub(crate) struct AddArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// The user's email address (unique, compared case-insensitively).
    #[arg(long)]
    email: String,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    password_stdin: bool,
}

/// Arguments of `latchkey user list`.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments naming one user.
#[derive(Debug, Args)]
pub(crate) struct TargetArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// The user's email or id.
    user: String,
}

/// Arguments of `latchkey user passwd`.
#[derive(Debug, Args)]
pub(crate) struct PasswdArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// The user's email or id.
    user: String,
    /// Read the new password from the first line of standard input.
    #[arg(long)]
    password_stdin: bool,
}

/// Arguments of `latchkey user link`.
#[derive(Debug, Args)]
pub(crate) struct LinkArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// The user's email (or id).
    #[arg(long)]
    email: String,
    /// The provider's issuer, exactly as the `iss` of its ID tokens
    /// (e.g. https://accounts.google.com).
    #[arg(long, value_name = "URL")]
    issuer: String,
    /// The user's `sub` at that provider, exactly as in its ID tokens.
    #[arg(long, value_name = "SUB")]
    subject: String,
}

/// Arguments of `latchkey user unlink`.
#[derive(Debug, Args)]
pub(crate) struct UnlinkArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// The user's email (or id).
    #[arg(long)]
    email: String,
    /// The provider's issuer.
    #[arg(long, value_name = "URL")]
    issuer: String,
    /// Only this subject [default: every identity of the user at the issuer].
    #[arg(long, value_name = "SUB")]
    subject: Option<String>,
}

/// Opens the store the common arguments name and returns the user admin.
async fn admin(common: &CommonArgs) -> anyhow::Result<UserAdmin> {
    let store = common.open_store().await?;
    Ok(UserAdmin::new(store, Arc::new(SystemClock)))
}

/// The first line of standard input, without its line break.
fn password_from_stdin(requested: bool) -> anyhow::Result<SecretString> {
    if !requested {
        anyhow::bail!(
            "pass the password on standard input with --password-stdin \
             (for example: printf '%s\\n' \"$PASSWORD\" | latchkey user add --email you@example.com --password-stdin); \
             it is never taken from the command line"
        );
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        anyhow::bail!("no password on standard input");
    }
    Ok(SecretString::new(password))
}

/// Runs a user command.
pub(crate) async fn run(command: &UserCommand) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match command {
        UserCommand::Add(args) => {
            let password = password_from_stdin(args.password_stdin)?;
            let admin = admin(&args.common).await?;
            let user = admin
                .add(&args.email, &password)
                .await
                .context("cannot add the user")?;
            writeln!(out, "user_id: {}", user.user_id)?;
            writeln!(out, "email: {}", user.email)?;
        }
        UserCommand::List(args) => {
            let admin = admin(&args.common).await?;
            let users = admin.list().await?;
            let mut identities = Vec::with_capacity(users.len());
            for user in &users {
                identities.push(admin.identities(&user.user_id).await?);
            }
            if args.json {
                let listed: Vec<serde_json::Value> = users
                    .iter()
                    .zip(&identities)
                    .map(|(user, linked)| {
                        let linked: Vec<serde_json::Value> = linked
                            .iter()
                            .map(|identity| {
                                serde_json::json!({
                                    "issuer": identity.issuer,
                                    "subject": identity.subject,
                                    "email": identity.email,
                                    "linked_at": identity.created_at.unix_timestamp(),
                                })
                            })
                            .collect();
                        serde_json::json!({
                            "user_id": user.user_id,
                            "email": user.email,
                            "disabled": user.disabled,
                            "has_password": user.password_hash.is_some(),
                            "created_at": user.created_at.unix_timestamp(),
                            "identities": linked,
                        })
                    })
                    .collect();
                writeln!(out, "{}", serde_json::to_string_pretty(&listed)?)?;
                return Ok(());
            }
            writeln!(
                out,
                "{:<24} {:<8} {:<20} EMAIL",
                "USER_ID", "STATUS", "CREATED"
            )?;
            for (user, linked) in users.iter().zip(&identities) {
                writeln!(
                    out,
                    "{:<24} {:<8} {:<20} {}",
                    user.user_id,
                    if user.disabled { "disabled" } else { "active" },
                    crate::keys::timestamp(user.created_at),
                    user.email
                )?;
                // One indented line per linked identity: issuer, then subject.
                for identity in linked {
                    writeln!(
                        out,
                        "  linked: issuer={} subject={}",
                        identity.issuer, identity.subject
                    )?;
                }
            }
        }
        UserCommand::Disable(args) | UserCommand::Enable(args) => {
            let disable = matches!(command, UserCommand::Disable(_));
            let user = admin(&args.common)
                .await?
                .set_disabled(&args.user, disable)
                .await
                .with_context(|| format!("cannot change the user {:?}", args.user))?;
            if disable {
                writeln!(
                    out,
                    "disabled {} ({}); their browser sessions are ended",
                    user.email, user.user_id
                )?;
            } else {
                writeln!(out, "enabled {} ({})", user.email, user.user_id)?;
            }
        }
        UserCommand::Passwd(args) => {
            let password = password_from_stdin(args.password_stdin)?;
            let user = admin(&args.common)
                .await?
                .set_password(&args.user, &password)
                .await
                .with_context(|| format!("cannot change the password of {:?}", args.user))?;
            writeln!(
                out,
                "changed the password of {} ({}); their browser sessions are ended",
                user.email, user.user_id
            )?;
        }
        UserCommand::Link(args) => {
            let (user, identity) = admin(&args.common)
                .await?
                .link_identity(&args.email, &args.issuer, &args.subject)
                .await
                .with_context(|| {
                    format!(
                        "cannot link (issuer {}, subject {}) to {:?}",
                        args.issuer, args.subject, args.email
                    )
                })?;
            writeln!(
                out,
                "linked issuer={} subject={} to {} ({})",
                identity.issuer, identity.subject, user.email, user.user_id
            )?;
        }
        UserCommand::Unlink(args) => {
            let (user, unlinked) = admin(&args.common)
                .await?
                .unlink_identity(&args.email, &args.issuer, args.subject.as_deref())
                .await
                .with_context(|| format!("cannot unlink from {:?}", args.email))?;
            for identity in &unlinked {
                writeln!(
                    out,
                    "unlinked issuer={} subject={} from {} ({})",
                    identity.issuer, identity.subject, user.email, user.user_id
                )?;
            }
        }
    }
    Ok(())
}
