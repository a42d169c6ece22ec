//! A Rust MCP server protected by the Latchkey guard layer.
//!
//! Run a Latchkey authorization server at `http://127.0.0.1:8080` (its
//! issuer), then `cargo run -p latchkey-resource --example layer`: this
//! serves a minimal JSON-RPC endpoint at `http://127.0.0.1:3000/mcp` that
//! only answers requests bearing a Latchkey access token for that resource,
//! plus its protected resource metadata at
//! `http://127.0.0.1:3000/.well-known/oauth-protected-resource/mcp`.
//!
//! Every request needs the scope `mcp`; calling a tool also needs
//! `mcp:tools`, and the `delete_notes` tool needs `notes:admin` on top.
//! With the scope hierarchy separator `:`, a token with `mcp` covers
//! `mcp:tools` as well. A token without `notes:admin` calling
//! `delete_notes` gets `403 insufficient_scope` naming every scope needed,
//! which MCP clients answer by asking the user for more.

use axum::routing::post;
use axum::{Extension, Json, Router};
use latchkey_protocol::resource::ResourceUri;
use latchkey_protocol::scope::{ScopeHierarchy, ScopeSet};
use latchkey_resource::{
    GuardConfig, GuardLayer, Identity, MetadataOptions, ScopePolicy, TokenValidator, TrustedIssuer,
};
use serde_json::{Value, json};

/// The authorization server's issuer identifier, byte-for-byte.
const ISSUER: &str = "http://127.0.0.1:8080";
/// This server's MCP endpoint: the audience tokens must carry.
const RESOURCE: &str = "http://127.0.0.1:3000/mcp";
/// Where to listen.
const LISTEN: &str = "127.0.0.1:3000";

/// The MCP endpoint. The guard already checked the token and the scopes;
/// the handler only reads who is calling.
async fn mcp(Extension(identity): Extension<Identity>, Json(request): Json<Value>) -> Json<Value> {
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let method = request.get("method").and_then(Value::as_str).unwrap_or("");
    let result = match method {
        "initialize" => json!({
            "protocolVersion": "2025-11-25",
            "capabilities": { "tools": {} },
            "serverInfo": { "name": "latchkey-layer-example", "version": "0.1.0" }
        }),
        "tools/list" => json!({
            "tools": [
                { "name": "whoami", "inputSchema": { "type": "object" } },
                { "name": "delete_notes", "inputSchema": { "type": "object" } }
            ]
        }),
        "tools/call" => json!({
            "content": [{
                "type": "text",
                "text": format!(
                    "subject {} (issuer {}), client {}, scopes {}",
                    identity.subject,
                    identity.issuer,
                    identity.client_id.as_deref().unwrap_or("unknown"),
                    identity.scopes
                )
            }]
        }),
        _ => {
            return Json(json!({
                "jsonrpc": "2.0", "id": id,
                "error": { "code": -32601, "message": "method not found" }
            }));
        }
    };
    Json(json!({ "jsonrpc": "2.0", "id": id, "result": result }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let validator = TokenValidator::builder(ResourceUri::parse(RESOURCE)?)
        .trust(TrustedIssuer::latchkey(ISSUER))
        .scope_hierarchy(ScopeHierarchy::new().with_separator(':'))
        .build()?;
    let policy = ScopePolicy::new(ScopeSet::parse("mcp")?)
        .mcp_method("tools/call", ScopeSet::parse("mcp:tools")?)
        .tool("delete_notes", ScopeSet::parse("notes:admin")?);
    let guard = GuardLayer::new(GuardConfig::new(validator).scope_policy(policy).metadata(
        MetadataOptions {
            resource_name: Some("Latchkey layer example".to_owned()),
            ..MetadataOptions::default()
        },
    ))?;

    let app = Router::new()
        .route("/mcp", post(mcp))
        .layer(guard.clone())
        // Merged after `layer`: the metadata must stay unauthenticated.
        .merge(guard.metadata_router());
    let listener = tokio::net::TcpListener::bind(LISTEN).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
