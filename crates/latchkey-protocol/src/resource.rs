//! Resource indicators (RFC 8707) and the MCP "canonical server URI".
//!
//! A [`ResourceUri`] names a protected resource (an MCP server endpoint) and
//! becomes the `aud` of the tokens issued for it. Two spellings of the same
//! resource must compare equal, so the URI is kept in a canonical form:
//! - the scheme and host are lowercased, IPv6 literals are written in their
//!   RFC 5952 form, and the default port (80 for http, 443 for https) is
//!   dropped;
//! - a path of exactly `/` is removed: the MCP specification prefers no
//!   trailing slash, while the MCP TypeScript SDK sends `URL.href`, which is
//!   `https://h/` for a bare origin, so `https://h` and `https://h/` must be
//!   one resource;
//! - every other path, and any query, is kept byte-for-byte: resource
//!   servers are free to distinguish `/mcp` from `/mcp/` or `/MCP`.
//!
//! Acceptance rules: an absolute URI (RFC 8707 §2), no fragment, no
//! userinfo, `https`, or `http` for loopback hosts only (`127.0.0.1`,
//! `[::1]`, `localhost`). The loopback exception exists because MCP servers
//! are commonly developed at `http://localhost:{port}/mcp`; anywhere else a
//! token audience over plain http would invite token leakage (MCP requires
//! HTTPS for production endpoints). Hosts must be ASCII (punycode) and in
//! the form a browser would use, so the audience is unambiguous.
//!
//! Invariant: `ResourceUri::parse(r.as_str())` returns `r` again (the
//! canonical form is a fixed point).

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{ErrorCode, OAuthError};
use crate::uri::{self, SplitError};

/// The longest resource URI accepted, in characters.
pub const MAX_RESOURCE_URI_LEN: usize = 2000;

/// Why a resource indicator was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    /// The value is empty.
    #[error("the resource is empty")]
    Empty,
    /// The value is longer than [`MAX_RESOURCE_URI_LEN`].
    #[error("the resource is longer than {MAX_RESOURCE_URI_LEN} characters")]
    TooLong,
    /// A character RFC 3986 does not allow, or a bad percent-encoding.
    #[error("the resource contains a character that is not allowed in a URI")]
    InvalidCharacter,
    /// Not an absolute URI with an authority (RFC 8707 §2).
    #[error("the resource must be an absolute URI (RFC 8707 section 2)")]
    NotAbsolute,
    /// A scheme other than http or https.
    #[error("the resource must use https")]
    UnsupportedScheme,
    /// A fragment (RFC 8707 §2).
    #[error("the resource must not contain a fragment (RFC 8707 section 2)")]
    Fragment,
    /// Userinfo in the authority.
    #[error("the resource must not contain userinfo")]
    Userinfo,
    /// The host is empty, malformed or not in canonical form.
    #[error("the resource host is missing or invalid")]
    InvalidHost,
    /// The port is not a number from 1 to 65535.
    #[error("the resource port is invalid")]
    InvalidPort,
    /// `http` for a host that is not loopback.
    #[error("the resource must use https (http is only allowed for loopback hosts)")]
    HttpRequiresLoopback,
    /// More than one `resource` parameter: Latchkey binds each token to a
    /// single audience.
    #[error("only one resource may be requested per token")]
    Multiple,
    /// No `resource` was sent and no default applies.
    #[error("a resource parameter is required")]
    Missing,
    /// A well-formed resource that this server does not protect.
    #[error("the resource is not served by this authorization server")]
    Unknown,
}

impl ResourceError {
    /// Always `invalid_target` (RFC 8707 §2).
    pub fn error_code(&self) -> ErrorCode {
        ErrorCode::InvalidTarget
    }
}

impl From<ResourceError> for OAuthError {
    fn from(error: ResourceError) -> OAuthError {
        OAuthError::with_description(error.error_code(), error.to_string())
    }
}

/// A resource indicator in canonical form.
///
/// ```
/// use latchkey_protocol::resource::ResourceUri;
///
/// let from_sdk = ResourceUri::parse("HTTPS://MCP.Example.COM:443/").unwrap();
/// let configured = ResourceUri::parse("https://mcp.example.com").unwrap();
/// assert_eq!(from_sdk, configured);
/// assert_eq!(from_sdk.as_str(), "https://mcp.example.com");
///
/// let with_path = ResourceUri::parse("https://mcp.example.com/Tools/").unwrap();
/// assert_eq!(with_path.as_str(), "https://mcp.example.com/Tools/");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceUri {
    canonical: String,
    host: String,
}

impl ResourceUri {
    /// Parses and canonicalizes a resource indicator (rules in the module
    /// docs).
    pub fn parse(raw: &str) -> Result<ResourceUri, ResourceError> {
        if raw.is_empty() {
            return Err(ResourceError::Empty);
        }
        if raw.len() > MAX_RESOURCE_URI_LEN {
            return Err(ResourceError::TooLong);
        }
        if !uri::has_only_uri_characters(raw) {
            return Err(ResourceError::InvalidCharacter);
        }
        let parts = uri::split(raw).map_err(|error| match error {
            SplitError::NotAbsolute => ResourceError::NotAbsolute,
            SplitError::BadAuthority => ResourceError::InvalidHost,
        })?;
        if parts.fragment.is_some() {
            return Err(ResourceError::Fragment);
        }
        let scheme = parts.scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "https" => 443,
            "http" => 80,
            _ => return Err(ResourceError::UnsupportedScheme),
        };
        let authority = parts.authority.ok_or(ResourceError::NotAbsolute)?;
        if authority.userinfo.is_some() {
            return Err(ResourceError::Userinfo);
        }
        let host = canonical_host(&scheme, authority.host)?;
        if scheme == "http" && !uri::is_loopback_host(&host) {
            return Err(ResourceError::HttpRequiresLoopback);
        }
        let port = match authority.port {
            None | Some("") => None,
            Some(digits) => match digits.parse::<u16>() {
                Ok(0) | Err(_) => return Err(ResourceError::InvalidPort),
                Ok(port) if port == default_port => None,
                Ok(port) => Some(port),
            },
        };

        let mut canonical = format!("{scheme}://{host}");
        if let Some(port) = port {
            canonical.push(':');
            canonical.push_str(&port.to_string());
        }
        if parts.path != "/" {
            canonical.push_str(parts.path);
        }
        if let Some(query) = parts.query {
            canonical.push('?');
            canonical.push_str(query);
        }
        Ok(ResourceUri { canonical, host })
    }

    /// The canonical URI: the token audience (`aud`, RFC 9068 §3) and the
    /// `resource` of protected resource metadata (RFC 9728 §2).
    pub fn as_str(&self) -> &str {
        &self.canonical
    }

    /// The canonical host (lowercase; IPv6 in brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Whether the host is `127.0.0.1`, `[::1]` or `localhost`.
    pub fn is_loopback(&self) -> bool {
        uri::is_loopback_host(&self.host)
    }
}

/// Lowercases and checks a host. IPv6 literals are rewritten in RFC 5952
/// form; names and IPv4 addresses must be exactly what the URL parser
/// (and so a browser or HTTP client) would make of them.
fn canonical_host(scheme: &str, host: &str) -> Result<String, ResourceError> {
    if host.is_empty() {
        return Err(ResourceError::InvalidHost);
    }
    if let Some(inner) = host.strip_prefix('[') {
        let address = inner
            .strip_suffix(']')
            .and_then(|address| address.parse::<Ipv6Addr>().ok())
            .ok_or(ResourceError::InvalidHost)?;
        return Ok(format!("[{address}]"));
    }
    let lowered = host.to_ascii_lowercase();
    if lowered.contains('%') {
        return Err(ResourceError::InvalidHost);
    }
    let probe = url::Url::parse(&format!("{scheme}://{lowered}/"))
        .map_err(|_| ResourceError::InvalidHost)?;
    if probe.host_str() != Some(lowered.as_str()) {
        return Err(ResourceError::InvalidHost);
    }
    Ok(lowered)
}

impl fmt::Display for ResourceUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical)
    }
}

impl FromStr for ResourceUri {
    type Err = ResourceError;

    fn from_str(raw: &str) -> Result<ResourceUri, ResourceError> {
        ResourceUri::parse(raw)
    }
}

impl AsRef<str> for ResourceUri {
    fn as_ref(&self) -> &str {
        &self.canonical
    }
}

impl Serialize for ResourceUri {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.canonical)
    }
}

impl<'de> Deserialize<'de> for ResourceUri {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ResourceUri, D::Error> {
        let raw = String::deserialize(deserializer)?;
        ResourceUri::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// The resources an authorization server protects.
///
/// ```
/// use latchkey_protocol::resource::{ResourceError, ResourceSet, ResourceUri};
///
/// let served = ResourceSet::new([
///     ResourceUri::parse("https://mcp.example.com/mcp").unwrap(),
/// ]);
/// assert_eq!(
///     served.find("https://MCP.example.com:443/mcp").unwrap().as_str(),
///     "https://mcp.example.com/mcp"
/// );
/// assert_eq!(served.find("https://mcp.example.com/other"), Err(ResourceError::Unknown));
/// // With a single resource, an absent parameter can default to it.
/// assert!(served.resolve(None).is_ok());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceSet {
    resources: Vec<ResourceUri>,
}

impl ResourceSet {
    /// A set of resources; duplicates are dropped.
    pub fn new(resources: impl IntoIterator<Item = ResourceUri>) -> ResourceSet {
        let mut unique: Vec<ResourceUri> = Vec::new();
        for resource in resources {
            if !unique.contains(&resource) {
                unique.push(resource);
            }
        }
        ResourceSet { resources: unique }
    }

    /// Parses a requested `resource` and finds it among these resources:
    /// [`ResourceError::Unknown`] when it is well-formed but not served.
    pub fn find(&self, requested: &str) -> Result<&ResourceUri, ResourceError> {
        let parsed = ResourceUri::parse(requested)?;
        self.get(&parsed).ok_or(ResourceError::Unknown)
    }

    /// The served resource equal to `resource`, if any.
    pub fn get(&self, resource: &ResourceUri) -> Option<&ResourceUri> {
        self.resources.iter().find(|served| *served == resource)
    }

    /// Whether `resource` is served.
    pub fn contains(&self, resource: &ResourceUri) -> bool {
        self.get(resource).is_some()
    }

    /// The only served resource, when there is exactly one.
    pub fn only(&self) -> Option<&ResourceUri> {
        match self.resources.as_slice() {
            [single] => Some(single),
            _ => None,
        }
    }

    /// Resolves an optional `resource` parameter: the matching served
    /// resource if one was sent, otherwise the only served resource, and
    /// [`ResourceError::Missing`] when several are served and none was named.
    pub fn resolve(&self, requested: Option<&str>) -> Result<&ResourceUri, ResourceError> {
        match requested {
            Some(requested) => self.find(requested),
            None => self.only().ok_or(ResourceError::Missing),
        }
    }

    /// The served resources in configuration order.
    pub fn iter(&self) -> std::slice::Iter<'_, ResourceUri> {
        self.resources.iter()
    }

    /// How many resources are served.
    pub fn len(&self) -> usize {
        self.resources.len()
    }

    /// Whether no resource is served.
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }
}

impl<'a> IntoIterator for &'a ResourceSet {
    type Item = &'a ResourceUri;
    type IntoIter = std::slice::Iter<'a, ResourceUri>;

    fn into_iter(self) -> Self::IntoIter {
        self.resources.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonicalization_table() {
        let table = [
            ("https://mcp.example.com", "https://mcp.example.com"),
            ("https://mcp.example.com/", "https://mcp.example.com"),
            ("HTTPS://MCP.EXAMPLE.COM/", "https://mcp.example.com"),
            ("https://mcp.example.com:443", "https://mcp.example.com"),
            ("https://mcp.example.com:443/", "https://mcp.example.com"),
            (
                "https://mcp.example.com:0443/mcp",
                "https://mcp.example.com/mcp",
            ),
            ("https://mcp.example.com:", "https://mcp.example.com"),
            (
                "https://mcp.example.com:8443/",
                "https://mcp.example.com:8443",
            ),
            ("https://mcp.example.com/mcp", "https://mcp.example.com/mcp"),
            (
                "https://mcp.example.com/mcp/",
                "https://mcp.example.com/mcp/",
            ),
            ("https://mcp.example.com/MCP", "https://mcp.example.com/MCP"),
            ("https://mcp.example.com//", "https://mcp.example.com//"),
            (
                "https://mcp.example.com/a/../b",
                "https://mcp.example.com/a/../b",
            ),
            (
                "https://mcp.example.com/%7Euser",
                "https://mcp.example.com/%7Euser",
            ),
            (
                "https://mcp.example.com/mcp?x=1",
                "https://mcp.example.com/mcp?x=1",
            ),
            (
                "https://mcp.example.com/?x=1",
                "https://mcp.example.com?x=1",
            ),
            ("https://mcp.example.com?x=1", "https://mcp.example.com?x=1"),
            ("https://192.0.2.1/mcp", "https://192.0.2.1/mcp"),
            ("https://[2001:DB8:0:0::1]/mcp", "https://[2001:db8::1]/mcp"),
            ("http://localhost:3000/mcp", "http://localhost:3000/mcp"),
            ("http://LocalHost:80/", "http://localhost"),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("http://[::1]:8080/mcp", "http://[::1]:8080/mcp"),
            ("http://[0:0:0:0:0:0:0:1]/", "http://[::1]"),
            (
                "https://xn--bcher-kva.example/mcp",
                "https://xn--bcher-kva.example/mcp",
            ),
        ];
        for (raw, canonical) in table {
            let parsed = ResourceUri::parse(raw).unwrap_or_else(|error| panic!("{raw}: {error}"));
            assert_eq!(parsed.as_str(), canonical, "{raw}");
            let again = ResourceUri::parse(parsed.as_str()).unwrap();
            assert_eq!(again, parsed, "not idempotent: {raw}");
        }
    }

    #[test]
    fn refusal_table() {
        let table = [
            ("", ResourceError::Empty),
            ("/mcp", ResourceError::NotAbsolute),
            ("mcp.example.com/mcp", ResourceError::NotAbsolute),
            ("https:mcp.example.com", ResourceError::NotAbsolute),
            ("urn:example:mcp", ResourceError::UnsupportedScheme),
            ("ftp://mcp.example.com", ResourceError::UnsupportedScheme),
            ("wss://mcp.example.com", ResourceError::UnsupportedScheme),
            ("https://mcp.example.com/mcp#frag", ResourceError::Fragment),
            ("https://mcp.example.com/#", ResourceError::Fragment),
            ("https://user@mcp.example.com", ResourceError::Userinfo),
            ("https://", ResourceError::InvalidHost),
            ("https:///mcp", ResourceError::InvalidHost),
            ("https://ex%61mple.com", ResourceError::InvalidHost),
            ("https://127.1/", ResourceError::InvalidHost),
            ("https://[::1", ResourceError::InvalidHost),
            ("https://[zz::1]/", ResourceError::InvalidHost),
            ("https://mcp.example.com:0", ResourceError::InvalidPort),
            ("https://mcp.example.com:65536", ResourceError::InvalidPort),
            ("https://mcp.example.com:8x", ResourceError::InvalidHost),
            (
                "http://mcp.example.com/mcp",
                ResourceError::HttpRequiresLoopback,
            ),
            ("http://127.0.0.2/mcp", ResourceError::HttpRequiresLoopback),
            (
                "https://mcp.example.com/a b",
                ResourceError::InvalidCharacter,
            ),
            ("https://bücher.example", ResourceError::InvalidCharacter),
            (
                "https://mcp.example.com\\@evil",
                ResourceError::InvalidCharacter,
            ),
        ];
        for (raw, expected) in table {
            assert_eq!(ResourceUri::parse(raw), Err(expected), "{raw}");
        }
        let long = format!(
            "https://mcp.example.com/{}",
            "a".repeat(MAX_RESOURCE_URI_LEN)
        );
        assert_eq!(ResourceUri::parse(&long), Err(ResourceError::TooLong));
    }

    #[test]
    fn equality_and_hashing_use_the_canonical_form() {
        use std::collections::HashSet;
        let set: HashSet<ResourceUri> = ["https://h", "https://h/", "HTTPS://H:443"]
            .iter()
            .map(|raw| ResourceUri::parse(raw).unwrap())
            .collect();
        assert_eq!(set.len(), 1);
        assert_ne!(
            ResourceUri::parse("https://h/mcp").unwrap(),
            ResourceUri::parse("https://h/mcp/").unwrap()
        );
    }

    #[test]
    fn accessors() {
        let resource = ResourceUri::parse("http://LOCALHOST:3000/mcp").unwrap();
        assert_eq!(resource.host(), "localhost");
        assert!(resource.is_loopback());
        assert!(!ResourceUri::parse("https://h").unwrap().is_loopback());
        assert_eq!(resource.to_string(), "http://localhost:3000/mcp");
        assert_eq!(
            "https://h/".parse::<ResourceUri>().unwrap().as_str(),
            "https://h"
        );
    }

    #[test]
    fn serde_uses_the_canonical_string() {
        let resource: ResourceUri = serde_json::from_str("\"https://H/\"").unwrap();
        assert_eq!(serde_json::to_string(&resource).unwrap(), "\"https://h\"");
        assert!(serde_json::from_str::<ResourceUri>("\"https://h/#x\"").is_err());
    }

    #[test]
    fn resource_sets_find_resolve_and_refuse() {
        let single = ResourceSet::new([ResourceUri::parse("https://a.example/mcp").unwrap()]);
        assert_eq!(
            single.resolve(None).unwrap().as_str(),
            "https://a.example/mcp"
        );
        assert_eq!(
            single.resolve(Some("https://a.example/other")),
            Err(ResourceError::Unknown)
        );
        assert_eq!(
            single.resolve(Some("https://a.example/mcp#x")),
            Err(ResourceError::Fragment)
        );

        let several = ResourceSet::new([
            ResourceUri::parse("https://a.example/mcp").unwrap(),
            ResourceUri::parse("https://b.example").unwrap(),
            ResourceUri::parse("https://b.example/").unwrap(),
        ]);
        assert_eq!(several.len(), 2);
        assert_eq!(several.only(), None);
        assert_eq!(several.resolve(None), Err(ResourceError::Missing));
        assert_eq!(
            several.find("https://B.example/").unwrap().as_str(),
            "https://b.example"
        );
        assert!(several.contains(&ResourceUri::parse("https://a.example/mcp").unwrap()));
        assert_eq!(several.iter().count(), 2);
        assert!(ResourceSet::default().is_empty());
    }

    #[test]
    fn errors_map_to_invalid_target() {
        for error in [
            ResourceError::Unknown,
            ResourceError::Multiple,
            ResourceError::Fragment,
        ] {
            assert_eq!(OAuthError::from(error).code(), ErrorCode::InvalidTarget);
        }
    }
}
