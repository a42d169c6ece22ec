//! `latchkey client add|list|show|remove`: the operator's client commands.
//!
//! `add` prints the client id and, for a confidential client, its secret;
//! the secret is shown this once (only its SHA-256 is stored). With
//! `--json` it prints the registration JSON instead, for scripts
//! (`latchkey client add --name bench --confidential --json | jq -r
//! .client_secret`). A running server that cached a removed client keeps
//! accepting it for at most its client cache TTL (30 s by default).

use std::io::Write as _;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use latchkey_service::SystemClock;
use latchkey_service::admin::{ClientAdmin, NewClient};
use latchkey_store::ClientOrigin;

use crate::config::CommonArgs;

/// `latchkey client …`.
#[derive(Debug, Subcommand)]
pub(crate) enum ClientCommand {
    /// Create a client; prints its id and, once, its secret.
    Add(AddArgs),
    /// List every client.
    List(ListArgs),
    /// Show one client's registered metadata.
    Show(ShowArgs),
    /// Delete a client with its codes, refresh tokens and consents.
    Remove(RemoveArgs),
}

/// Arguments of `latchkey client add`.
#[derive(Debug, Args)]
pub(crate) struct AddArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// A display name.
    #[arg(long)]
    name: String,
    /// Give the client a secret (client_secret_basic; client_secret_post works too).
    /// Without --redirect-uri it uses the client_credentials grant.
    #[arg(long)]
    confidential: bool,
    /// A redirect URI (repeatable); the client then uses the
    /// authorization_code and refresh_token grants.
    #[arg(long = "redirect-uri", value_name = "URI")]
    redirect_uris: Vec<String>,
    /// A grant type (repeatable), instead of the defaults above:
    /// authorization_code, refresh_token or client_credentials.
    #[arg(long = "grant-type", value_name = "GRANT")]
    grant_types: Vec<String>,
    /// The scopes the client may request, space-separated (default: any
    /// scope a resource allows).
    #[arg(long)]
    scope: Option<String>,
    /// client_secret_basic or client_secret_post, for confidential clients.
    #[arg(long, value_name = "METHOD")]
    auth_method: Option<String>,
    /// Print the registration as JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `latchkey client list`.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `latchkey client show`.
#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// The client id.
    client_id: String,
}

/// Arguments of `latchkey client remove`.
#[derive(Debug, Args)]
pub(crate) struct RemoveArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// The client id.
    client_id: String,
}

/// Opens the store the common arguments name and returns the client admin.
async fn admin(common: &CommonArgs) -> anyhow::Result<ClientAdmin> {
    let store = common.open_store().await?;
    Ok(ClientAdmin::new(store, Arc::new(SystemClock)))
}

fn origin(origin: ClientOrigin) -> &'static str {
    origin.as_str()
}

/// Runs a client command.
pub(crate) async fn run(command: &ClientCommand) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match command {
        ClientCommand::Add(args) => {
            let admin = admin(&args.common).await?;
            let added = admin
                .add(&NewClient {
                    name: args.name.clone(),
                    confidential: args.confidential,
                    redirect_uris: args.redirect_uris.clone(),
                    grant_types: args.grant_types.clone(),
                    scope: args.scope.clone(),
                    token_endpoint_auth_method: args.auth_method.clone(),
                })
                .await
                .context("cannot add the client")?;
            if args.json {
                writeln!(out, "{}", serde_json::to_string_pretty(&added.to_json())?)?;
                return Ok(());
            }
            writeln!(out, "client_id: {}", added.client_id)?;
            if let Some(secret) = &added.client_secret {
                writeln!(out, "client_secret: {}", secret.expose())?;
            }
            let grants: Vec<&str> = added
                .metadata
                .grant_types()
                .iter()
                .map(|grant| grant.as_str())
                .collect();
            writeln!(out, "grant_types: {}", grants.join(" "))?;
            writeln!(
                out,
                "token_endpoint_auth_method: {}",
                added.metadata.token_endpoint_auth_method()
            )?;
            if added.client_secret.is_some() {
                writeln!(
                    out,
                    "The secret is shown only now; Latchkey keeps only its SHA-256."
                )?;
            }
        }
        ClientCommand::List(args) => {
            let admin = admin(&args.common).await?;
            let clients = admin.list().await?;
            if args.json {
                let listed: Vec<serde_json::Value> = clients
                    .iter()
                    .map(|summary| {
                        serde_json::json!({
                            "client_id": summary.client.client_id(),
                            "origin": origin(summary.client.origin()),
                            "created_at": summary.client.created_at().unix_timestamp(),
                            "metadata": summary.metadata,
                        })
                    })
                    .collect();
                writeln!(out, "{}", serde_json::to_string_pretty(&listed)?)?;
                return Ok(());
            }
            writeln!(
                out,
                "{:<24} {:<9} {:<12} {:<20} {:<48} NAME",
                "CLIENT_ID", "ORIGIN", "TYPE", "CREATED", "GRANTS"
            )?;
            for summary in &clients {
                let client = &summary.client;
                let grants: Vec<&str> = client
                    .metadata()
                    .grant_types()
                    .iter()
                    .map(|grant| grant.as_str())
                    .collect();
                writeln!(
                    out,
                    "{:<24} {:<9} {:<12} {:<20} {:<48} {}",
                    client.client_id(),
                    origin(client.origin()),
                    if client.is_confidential() {
                        "confidential"
                    } else {
                        "public"
                    },
                    crate::keys::timestamp(client.created_at()),
                    grants.join(","),
                    client.metadata().client_name().unwrap_or("-")
                )?;
            }
        }
        ClientCommand::Show(args) => {
            let admin = admin(&args.common).await?;
            let Some(summary) = admin.show(&args.client_id).await? else {
                anyhow::bail!("no client with id {:?}", args.client_id);
            };
            let shown = serde_json::json!({
                "client_id": summary.client.client_id(),
                "origin": origin(summary.client.origin()),
                "created_at": crate::keys::timestamp(summary.client.created_at()),
                "confidential": summary.client.is_confidential(),
                "metadata": summary.metadata,
            });
            writeln!(out, "{}", serde_json::to_string_pretty(&shown)?)?;
        }
        ClientCommand::Remove(args) => {
            let admin = admin(&args.common).await?;
            if !admin.remove(&args.client_id).await? {
                anyhow::bail!("no client with id {:?}", args.client_id);
            }
            writeln!(
                out,
                "removed client {} (running servers forget it within their client cache TTL)",
                args.client_id
            )?;
        }
    }
    Ok(())
}
