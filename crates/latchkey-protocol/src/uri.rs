//! Byte-preserving URI splitting shared by the redirect URI, resource and
//! client-id URL parsers (crate-internal).
//!
//! The `url` crate normalizes as it parses (it lowercases, resolves dot
//! segments, re-encodes, and turns `127.1` into `127.0.0.1`), which is right
//! for fetching but wrong for OAuth, where redirect URIs and client-id URLs
//! are compared as exact strings and a resource identifier's path must be
//! kept byte-for-byte. So the rules here look at the string as sent, split
//! by the RFC 3986 Appendix B grammar; `url` is then used only as a second
//! opinion that the string is a URL at all and that its host is what it
//! looks like.

/// The components of an absolute URI, as slices of the original string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawUri<'a> {
    /// The scheme as written (not lowercased).
    pub(crate) scheme: &'a str,
    /// The authority, when the URI has `//`.
    pub(crate) authority: Option<Authority<'a>>,
    /// The path, possibly empty.
    pub(crate) path: &'a str,
    /// The query after `?`, possibly empty; `None` without `?`.
    pub(crate) query: Option<&'a str>,
    /// The fragment after `#`, possibly empty; `None` without `#`.
    pub(crate) fragment: Option<&'a str>,
}

/// An authority split into userinfo, host and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Authority<'a> {
    /// The userinfo before `@`, if any.
    pub(crate) userinfo: Option<&'a str>,
    /// The host as written; IPv6 literals keep their brackets.
    pub(crate) host: &'a str,
    /// The port digits after `:`, possibly empty; `None` without `:`.
    pub(crate) port: Option<&'a str>,
}

/// Why a string could not be split as an absolute URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SplitError {
    /// No scheme: a relative reference.
    NotAbsolute,
    /// The authority is not host[:port] with an optional userinfo.
    BadAuthority,
}

/// Splits an absolute URI (RFC 3986 §3 / Appendix B).
pub(crate) fn split(raw: &str) -> Result<RawUri<'_>, SplitError> {
    let scheme_end = raw.find(':').ok_or(SplitError::NotAbsolute)?;
    let scheme = raw.get(..scheme_end).ok_or(SplitError::NotAbsolute)?;
    if !is_scheme(scheme) {
        return Err(SplitError::NotAbsolute);
    }
    let after_scheme = raw.get(scheme_end + 1..).unwrap_or_default();

    let (before_fragment, fragment) = match after_scheme.split_once('#') {
        Some((before, fragment)) => (before, Some(fragment)),
        None => (after_scheme, None),
    };
    let (hier_part, query) = match before_fragment.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (before_fragment, None),
    };
    let (authority, path) = match hier_part.strip_prefix("//") {
        Some(authority_and_path) => {
            let authority_end = authority_and_path
                .find('/')
                .unwrap_or(authority_and_path.len());
            let authority_text = authority_and_path
                .get(..authority_end)
                .unwrap_or(authority_and_path);
            let path = authority_and_path.get(authority_end..).unwrap_or_default();
            (Some(split_authority(authority_text)?), path)
        }
        None => (None, hier_part),
    };
    Ok(RawUri {
        scheme,
        authority,
        path,
        query,
        fragment,
    })
}

fn split_authority(authority: &str) -> Result<Authority<'_>, SplitError> {
    let (userinfo, host_port) = match authority.rsplit_once('@') {
        Some((userinfo, host_port)) => (Some(userinfo), host_port),
        None => (None, authority),
    };
    let (host, port) = if host_port.starts_with('[') {
        let close = host_port.find(']').ok_or(SplitError::BadAuthority)?;
        let host = host_port.get(..=close).ok_or(SplitError::BadAuthority)?;
        let after = host_port.get(close + 1..).unwrap_or_default();
        if after.is_empty() {
            (host, None)
        } else {
            let port = after.strip_prefix(':').ok_or(SplitError::BadAuthority)?;
            (host, Some(port))
        }
    } else {
        match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    if port.is_some_and(|port| !port.bytes().all(|byte| byte.is_ascii_digit())) {
        return Err(SplitError::BadAuthority);
    }
    Ok(Authority {
        userinfo,
        host,
        port,
    })
}

/// scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) (RFC 3986 §3.1).
fn is_scheme(scheme: &str) -> bool {
    let mut bytes = scheme.bytes();
    bytes
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic())
        && bytes.all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'+' | b'-' | b'.'))
}

/// Whether the string uses only characters RFC 3986 allows in a URI, with
/// every `%` starting a valid percent-encoding. This refuses spaces, quotes,
/// `<`, `>`, `\`, `^`, `` ` ``, `{`, `|`, `}`, controls and non-ASCII, which
/// are how URL-confusion attacks usually start (a browser reads
/// `https://a.example\@b.example` differently from many parsers).
pub(crate) fn has_only_uri_characters(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        if byte == b'%' {
            let valid = bytes.get(index + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(index + 2).is_some_and(u8::is_ascii_hexdigit);
            if !valid {
                return false;
            }
            index += 3;
        } else if byte.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=".contains(&byte) {
            index += 1;
        } else {
            return false;
        }
    }
    true
}

/// Whether the host (as written, IPv6 in brackets) is a loopback host in
/// the sense of RFC 8252 §7.3 and the MCP specification: the IPv4 literal
/// `127.0.0.1`, the IPv6 literal `[::1]`, or the name `localhost` (any
/// case). Other spellings (`127.1`, `127.0.0.2`, `[0:0::1]`) are not
/// treated as loopback: being strict here only ever refuses.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    host == "127.0.0.1" || host == "[::1]" || host.eq_ignore_ascii_case("localhost")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_the_rfc_3986_example() {
        let uri = split("foo://example.com:8042/over/there?name=ferret#nose").unwrap();
        assert_eq!(uri.scheme, "foo");
        let authority = uri.authority.unwrap();
        assert_eq!(authority.host, "example.com");
        assert_eq!(authority.port, Some("8042"));
        assert_eq!(authority.userinfo, None);
        assert_eq!(uri.path, "/over/there");
        assert_eq!(uri.query, Some("name=ferret"));
        assert_eq!(uri.fragment, Some("nose"));
    }

    #[test]
    fn splits_edge_cases() {
        let uri = split("urn:example:animal:ferret:nose").unwrap();
        assert_eq!(uri.authority, None);
        assert_eq!(uri.path, "example:animal:ferret:nose");

        let uri = split("http://[::1]:8080?x#").unwrap();
        let authority = uri.authority.unwrap();
        assert_eq!(authority.host, "[::1]");
        assert_eq!(authority.port, Some("8080"));
        assert_eq!(uri.path, "");
        assert_eq!(uri.query, Some("x"));
        assert_eq!(uri.fragment, Some(""));

        let uri = split("https://user:pw@host/").unwrap();
        assert_eq!(uri.authority.unwrap().userinfo, Some("user:pw"));
        assert_eq!(uri.authority.unwrap().host, "host");

        assert_eq!(split("/relative"), Err(SplitError::NotAbsolute));
        assert_eq!(split("1http://x"), Err(SplitError::NotAbsolute));
        assert_eq!(split(":nothing"), Err(SplitError::NotAbsolute));
        assert_eq!(split("http://host:80x/"), Err(SplitError::BadAuthority));
        assert_eq!(split("http://[::1/"), Err(SplitError::BadAuthority));
        assert_eq!(split("http://[::1]x/"), Err(SplitError::BadAuthority));
    }

    #[test]
    fn uri_characters() {
        assert!(has_only_uri_characters("https://a.example/p?q=%20&r=~"));
        for refused in [
            "https://a.example/ x",
            "https://a.example\\@b",
            "https://a.example/%2",
            "https://a.example/%zz",
            "https://é.example",
            "https://a.example/\"",
            "https://a.example/{x}",
        ] {
            assert!(!has_only_uri_characters(refused), "{refused}");
        }
    }

    #[test]
    fn loopback_hosts() {
        for host in ["127.0.0.1", "[::1]", "localhost", "LocalHost"] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in ["127.1", "127.0.0.2", "[0:0::1]", "localhost.example", "::1"] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
