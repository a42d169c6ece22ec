//! Which scopes a request needs: [`ScopePolicy`].
//!
//! Requirements only ever add up: a request needs the default scopes, plus
//! those of every route prefix its path falls under, plus (for a JSON-RPC
//! `POST`) those of each MCP method it calls and, for `tools/call`, of the
//! tool named in `params.name`. A batch (a JSON array) needs the union over
//! its messages. Nothing can make a request need less than the default.
//!
//! Route prefixes match whole path segments: `/admin` covers `/admin` and
//! `/admin/users`, not `/administrator`; a prefix ending in `/` covers
//! everything below it.
//!
//! Body rules need the body: the guard buffers a `POST` body (up to its
//! limit) only when the policy has method or tool rules, computes the
//! needed scopes, and passes the very same bytes on. The JSON is parsed the
//! way the MCP SDKs parse it (a duplicated member: the last one wins), so
//! the guard and the server agree on which method is being called. A body
//! that is not a JSON-RPC message or batch is refused rather than guessed
//! at.

use std::collections::HashMap;

use latchkey_protocol::scope::ScopeSet;
use serde_json::Value;

/// The MCP method whose `params.name` selects a tool.
pub const TOOLS_CALL: &str = "tools/call";

/// Why a body could not be read as JSON-RPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Not JSON, not an object or an array of objects, or a `method` /
    /// tool `name` that is not a string.
    #[error("the request body is not a JSON-RPC message")]
    NotJsonRpc,
}

/// The scopes requests need.
///
/// ```
/// use latchkey_protocol::scope::ScopeSet;
/// use latchkey_resource::ScopePolicy;
///
/// let policy = ScopePolicy::new(ScopeSet::parse("mcp").unwrap())
///     .mcp_method("tools/call", ScopeSet::parse("tools:call").unwrap())
///     .tool("delete_repository", ScopeSet::parse("repo:admin").unwrap());
/// let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_repository"}}"#;
/// let needed = policy.for_path("/mcp").union(&policy.for_jsonrpc(body).unwrap());
/// assert_eq!(needed.to_string(), "mcp tools:call repo:admin");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopePolicy {
    /// Needed by every request.
    pub default: ScopeSet,
    /// Path prefix and the scopes it adds.
    pub per_route: Vec<(String, ScopeSet)>,
    /// JSON-RPC method and the scopes it adds.
    pub per_mcp_method: HashMap<String, ScopeSet>,
    /// Tool name (of `tools/call`) and the scopes it adds.
    pub per_tool: HashMap<String, ScopeSet>,
}

impl ScopePolicy {
    /// A policy needing `default` for every request.
    pub fn new(default: ScopeSet) -> ScopePolicy {
        ScopePolicy {
            default,
            ..ScopePolicy::default()
        }
    }

    /// Adds scopes for a path prefix.
    pub fn route(mut self, prefix: impl Into<String>, scopes: ScopeSet) -> ScopePolicy {
        self.per_route.push((prefix.into(), scopes));
        self
    }

    /// Adds scopes for an MCP (JSON-RPC) method.
    pub fn mcp_method(mut self, method: impl Into<String>, scopes: ScopeSet) -> ScopePolicy {
        self.per_mcp_method.insert(method.into(), scopes);
        self
    }

    /// Adds scopes for a tool called through `tools/call`.
    pub fn tool(mut self, name: impl Into<String>, scopes: ScopeSet) -> ScopePolicy {
        self.per_tool.insert(name.into(), scopes);
        self
    }

    /// Whether any rule needs the request body.
    pub fn needs_body(&self) -> bool {
        !self.per_mcp_method.is_empty() || !self.per_tool.is_empty()
    }

    /// The default scopes plus those of every matching route prefix.
    pub fn for_path(&self, path: &str) -> ScopeSet {
        self.per_route
            .iter()
            .filter(|(prefix, _)| prefix_matches(prefix, path))
            .fold(self.default.clone(), |needed, (_, scopes)| {
                needed.union(scopes)
            })
    }

    /// The scopes a JSON-RPC body's methods and tools add (not including
    /// the default or route scopes).
    pub fn for_jsonrpc(&self, body: &[u8]) -> Result<ScopeSet, PolicyError> {
        let message: Value = serde_json::from_slice(body).map_err(|_| PolicyError::NotJsonRpc)?;
        let mut needed = ScopeSet::new();
        match &message {
            Value::Object(_) => self.add_message(&message, &mut needed)?,
            Value::Array(batch) => {
                for item in batch {
                    self.add_message(item, &mut needed)?;
                }
            }
            _ => return Err(PolicyError::NotJsonRpc),
        }
        Ok(needed)
    }

    fn add_message(&self, message: &Value, needed: &mut ScopeSet) -> Result<(), PolicyError> {
        let Value::Object(object) = message else {
            return Err(PolicyError::NotJsonRpc);
        };
        let method = match object.get("method") {
            // A response to a server request carries no method.
            None => return Ok(()),
            Some(Value::String(method)) => method,
            Some(_) => return Err(PolicyError::NotJsonRpc),
        };
        if let Some(scopes) = self.per_mcp_method.get(method) {
            *needed = needed.union(scopes);
        }
        if method == TOOLS_CALL {
            match object.get("params").and_then(|params| params.get("name")) {
                None => {}
                Some(Value::String(tool)) => {
                    if let Some(scopes) = self.per_tool.get(tool) {
                        *needed = needed.union(scopes);
                    }
                }
                Some(_) => return Err(PolicyError::NotJsonRpc),
            }
        }
        Ok(())
    }
}

/// Whether `path` is `prefix` or below it, by whole segments.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || prefix.ends_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(text: &str) -> ScopeSet {
        ScopeSet::parse(text).unwrap()
    }

    fn policy() -> ScopePolicy {
        ScopePolicy::new(scopes("mcp"))
            .route("/admin", scopes("admin"))
            .route("/admin/keys", scopes("keys"))
            .route("/files/", scopes("files"))
            .mcp_method("tools/call", scopes("tools:call"))
            .mcp_method("resources/read", scopes("resources:read"))
            .tool("rm", scopes("danger"))
    }

    #[test]
    fn routes_add_by_whole_segments() {
        let policy = policy();
        assert_eq!(policy.for_path("/mcp"), scopes("mcp"));
        assert_eq!(policy.for_path("/admin"), scopes("mcp admin"));
        assert_eq!(policy.for_path("/admin/keys/1"), scopes("mcp admin keys"));
        assert_eq!(policy.for_path("/administrator"), scopes("mcp"));
        assert_eq!(policy.for_path("/files/a"), scopes("mcp files"));
        assert_eq!(policy.for_path("/files"), scopes("mcp"));
        assert!(policy.needs_body());
        assert!(
            !ScopePolicy::new(scopes("mcp"))
                .route("/a", scopes("a"))
                .needs_body()
        );
        assert!(
            ScopePolicy::new(scopes("mcp"))
                .tool("x", scopes("y"))
                .needs_body()
        );
    }

    #[test]
    fn methods_tools_and_batches_add_up() {
        let policy = policy();
        let call = |tool: &str| {
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{tool}","arguments":{{}}}}}}"#
            )
        };
        assert_eq!(
            policy.for_jsonrpc(call("rm").as_bytes()).unwrap(),
            scopes("tools:call danger")
        );
        assert_eq!(
            policy.for_jsonrpc(call("ls").as_bytes()).unwrap(),
            scopes("tools:call")
        );
        assert_eq!(
            policy
                .for_jsonrpc(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
                .unwrap(),
            ScopeSet::new()
        );
        let batch = format!(
            r#"[{}, {{"jsonrpc":"2.0","method":"resources/read","id":2}}, {{"jsonrpc":"2.0","id":9,"result":{{}}}}]"#,
            call("rm")
        );
        assert_eq!(
            policy.for_jsonrpc(batch.as_bytes()).unwrap(),
            scopes("tools:call danger resources:read")
        );
    }

    #[test]
    fn duplicate_members_resolve_like_the_sdks() {
        // JSON.parse and Python's json keep the last duplicate; so does the
        // guard, so it checks the method the server will run.
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"ls","name":"rm"}}"#;
        assert_eq!(
            policy().for_jsonrpc(body).unwrap(),
            scopes("tools:call danger")
        );
    }

    #[test]
    fn non_jsonrpc_bodies_are_refused() {
        let policy = policy();
        for body in [
            &b""[..],
            b"not json",
            b"42",
            b"\"text\"",
            b"[1]",
            br#"{"method":7}"#,
            br#"{"method":"tools/call","params":{"name":["rm"]}}"#,
        ] {
            assert_eq!(
                policy.for_jsonrpc(body),
                Err(PolicyError::NotJsonRpc),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
