//! A minimal HTTP/1.1 client over `std::net`, for the few requests the server
//! bench makes outside the load generator: readiness polls, and one token and
//! one introspection request that prove each server is configured as the
//! bench assumes before any load is measured.
//!
//! xtask stays free of HTTP crates (main.rs: it must compile in seconds), and
//! these requests are simple: plain `http://` on loopback, one request per
//! connection (`Connection: close`), a body read to the end and de-chunked
//! when the server streams it. The encodings the requests need live here too:
//! base64 (RFC 4648 §4) for HTTP Basic credentials, base64url (§5) to read a
//! JWT header, and form-urlencoding for bodies and, as RFC 6749 §2.3.1
//! requires, for the client id and secret inside Basic credentials.
//!
//! Invariant: nothing here logs; the callers decide what may be printed, and
//! never print a credential or a token.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{Context as _, bail};

/// How long one request may wait to connect, write or read.
const TIMEOUT: Duration = Duration::from_secs(10);

/// An `http://host:port/path` URL, split for a raw request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct HttpUrl {
    /// `host:port`, also the `Host` header.
    pub(super) authority: String,
    /// The path and query, starting with `/`.
    pub(super) path: String,
}

impl HttpUrl {
    /// Parses a plain-HTTP URL; `https://` is refused (the bench runs on
    /// loopback only).
    pub(super) fn parse(url: &str) -> anyhow::Result<Self> {
        let rest = url
            .strip_prefix("http://")
            .with_context(|| format!("not an http:// URL: {url}"))?;
        let (authority, path) = match rest.find('/') {
            Some(index) => rest.split_at(index),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            bail!("URL without a host: {url}");
        }
        Ok(Self {
            authority: authority.to_owned(),
            path: path.to_owned(),
        })
    }

    /// This URL's origin with `path` in place of its own.
    pub(super) fn with_path(&self, path: &str) -> Self {
        Self {
            authority: self.authority.clone(),
            path: path.to_owned(),
        }
    }
}

impl std::fmt::Display for HttpUrl {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "http://{}{}", self.authority, self.path)
    }
}

/// A response: its status code and its (de-chunked) body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Response {
    pub(super) status: u16,
    pub(super) body: String,
}

/// `GET url`.
pub(super) fn get(url: &HttpUrl) -> anyhow::Result<Response> {
    exchange(url, "GET", &[], "")
}

/// `POST url` with a form body and HTTP Basic client authentication.
pub(super) fn post_form(
    url: &HttpUrl,
    authorization: &str,
    form: &str,
) -> anyhow::Result<Response> {
    exchange(
        url,
        "POST",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Authorization", authorization),
        ],
        form,
    )
}

/// Sends one request on a fresh connection and reads the whole response.
fn exchange(
    url: &HttpUrl,
    method: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> anyhow::Result<Response> {
    let mut stream = TcpStream::connect(&url.authority)
        .with_context(|| format!("cannot connect to {}", url.authority))?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    let mut request = format!(
        "{method} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
        url.path,
        url.authority,
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream
        .write_all(request.as_bytes())
        .with_context(|| format!("cannot send {method} {url}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .with_context(|| format!("cannot read the answer to {method} {url}"))?;
    parse_response(&raw).with_context(|| format!("bad answer to {method} {url}"))
}

/// Parses a complete HTTP/1.1 response read up to the connection's end.
pub(super) fn parse_response(raw: &[u8]) -> anyhow::Result<Response> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("no end of the header section")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| status_line.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let chunked = lines.any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("transfer-encoding")
                && value.trim().eq_ignore_ascii_case("chunked")
        })
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_owned()
    };
    Ok(Response { status, body })
}

/// Decodes a chunked body (RFC 9112 §7.1), ignoring chunk extensions and
/// trailers.
fn dechunk(mut rest: &str) -> anyhow::Result<String> {
    let mut body = String::new();
    loop {
        let (size_line, after) = rest.split_once("\r\n").context("truncated chunk size")?;
        let size_text = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .with_context(|| format!("bad chunk size {size_text:?}"))?;
        if size == 0 {
            return Ok(body);
        }
        let chunk = after.get(..size).context("truncated chunk")?;
        body.push_str(chunk);
        rest = after
            .get(size..)
            .and_then(|tail| tail.strip_prefix("\r\n"))
            .context("chunk not followed by CRLF")?;
    }
}

/// The `Authorization` value for HTTP Basic client authentication: RFC 6749
/// §2.3.1 form-urlencodes the id and the secret before they are joined and
/// base64-encoded.
pub(super) fn basic_authorization(client_id: &str, client_secret: &str) -> String {
    let credentials = format!(
        "{}:{}",
        form_urlencode(client_id),
        form_urlencode(client_secret)
    );
    format!("Basic {}", base64_encode(credentials.as_bytes()))
}

/// Percent-encodes everything but RFC 3986's unreserved characters, which
/// is valid `application/x-www-form-urlencoded` for any value.
pub(super) fn form_urlencode(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// The base64 alphabet (RFC 4648 §4).
const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Base64 with padding (RFC 4648 §4).
pub(super) fn base64_encode(input: &[u8]) -> String {
    let mut output = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let byte = |index: usize| u32::from(chunk.get(index).copied().unwrap_or(0));
        let group = byte(0) << 16 | byte(1) << 8 | byte(2);
        // A chunk of n bytes yields n + 1 characters, then padding.
        for index in 0..4 {
            let sextet = (group >> (18 - 6 * index)) & 0x3f;
            let character = match BASE64.get(sextet as usize) {
                Some(&character) if index <= chunk.len() => character,
                _ => b'=',
            };
            output.push(char::from(character));
        }
    }
    output
}

/// Decodes unpadded base64url (RFC 4648 §5), as JWS segments are written
/// (RFC 7515 §2); `None` for any other character or an impossible length.
pub(super) fn base64url_decode(input: &str) -> Option<Vec<u8>> {
    let mut output = Vec::with_capacity(input.len() * 3 / 4);
    let mut group = 0u32;
    let mut bits = 0u32;
    for character in input.bytes() {
        let value = match character {
            b'A'..=b'Z' => character - b'A',
            b'a'..=b'z' => character - b'a' + 26,
            b'0'..=b'9' => character - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        group = group << 6 | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            output.push(((group >> bits) & 0xff) as u8);
        }
    }
    // One leftover character carries only 6 bits: no whole byte.
    (bits < 6).then_some(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_authority_and_path() {
        assert_eq!(
            HttpUrl::parse("http://127.0.0.1:8080/token").unwrap(),
            HttpUrl {
                authority: "127.0.0.1:8080".to_owned(),
                path: "/token".to_owned()
            }
        );
        let origin = HttpUrl::parse("http://127.0.0.1:1").unwrap();
        assert_eq!(origin.path, "/");
        assert_eq!(
            origin.with_path("/readyz").to_string(),
            "http://127.0.0.1:1/readyz"
        );
        assert!(HttpUrl::parse("https://127.0.0.1/").is_err());
        assert!(HttpUrl::parse("http:///token").is_err());
    }

    #[test]
    fn responses_are_parsed_with_and_without_chunking() {
        let plain = b"HTTP/1.1 200 OK\r\ncontent-length: 15\r\n\r\n{\"status\":\"ok\"}";
        assert_eq!(
            parse_response(plain).unwrap(),
            Response {
                status: 200,
                body: "{\"status\":\"ok\"}".to_owned()
            }
        );
        let chunked = b"HTTP/1.1 401 Unauthorized\r\nTransfer-Encoding: chunked\r\n\r\n\
                        4\r\n{\"a\"\r\n3;x=y\r\n:1}\r\n0\r\n\r\n";
        assert_eq!(
            parse_response(chunked).unwrap(),
            Response {
                status: 401,
                body: "{\"a\":1}".to_owned()
            }
        );
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(parse_response(b"SMTP 200\r\n\r\n").is_err());
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n9\r\nab")
                .is_err()
        );
    }

    #[test]
    fn base64_matches_the_rfc_4648_vectors() {
        // RFC 4648 §10.
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(input.as_bytes()), expected, "{input:?}");
            let unpadded = expected.trim_end_matches('=');
            assert_eq!(
                base64url_decode(unpadded).unwrap(),
                input.as_bytes(),
                "{unpadded:?}"
            );
        }
        // The two alphabets differ only in the last two characters.
        assert_eq!(base64_encode(&[0xfb, 0xff]), "+/8=");
        assert_eq!(base64url_decode("-_8").unwrap(), [0xfb, 0xff]);
        assert_eq!(base64url_decode("Zm9v="), None);
        assert_eq!(base64url_decode("Z"), None);
    }

    #[test]
    fn basic_credentials_are_form_encoded_first() {
        assert_eq!(form_urlencode("a b/c~d"), "a%20b%2Fc~d");
        // RFC 6749 §2.3.1: `:` in a secret must not end the id.
        assert_eq!(
            basic_authorization("id", "s:1"),
            format!("Basic {}", base64_encode(b"id:s%3A1"))
        );
    }

    #[test]
    fn a_request_reaches_a_real_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut received = Vec::new();
            let mut buffer = [0u8; 4096];
            // The request is small: read until its body has arrived.
            while !String::from_utf8_lossy(&received).ends_with("a=1") {
                let read = stream.read(&mut buffer).unwrap();
                assert!(read > 0, "the client hung up early");
                received.extend_from_slice(&buffer[..read]);
            }
            stream
                .write_all(b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok")
                .unwrap();
            String::from_utf8(received).unwrap()
        });
        let url = HttpUrl::parse(&format!("http://{address}/token")).unwrap();
        let response = post_form(&url, "Basic eDp5", "a=1").unwrap();
        assert_eq!(
            response,
            Response {
                status: 201,
                body: "ok".to_owned()
            }
        );
        let request = server.join().unwrap();
        assert!(request.starts_with("POST /token HTTP/1.1\r\n"), "{request}");
        assert!(
            request.contains("\r\nAuthorization: Basic eDp5\r\n"),
            "{request}"
        );
        assert!(request.contains("\r\nContent-Length: 3\r\n"), "{request}");
    }
}
