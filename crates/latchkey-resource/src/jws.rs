//! Splitting a compact JWS (RFC 7515 §7.1) into what the validator needs,
//! before any signature is checked.
//!
//! Nothing parsed here is trusted yet: the header picks the algorithm and
//! key, the unverified `iss` picks which issuer's keys to try, and the
//! claims are read again only after the signature verified. Decoding is
//! strict (base64url without padding, no stray bits, JSON objects only),
//! the token length is capped, and no header parameter can make the
//! validator fetch anything (`jku`, `x5u`, `jwk` and `x5c` are ignored,
//! RFC 8725 §3.10). A `crit` header is refused, because this validator
//! understands no extension (RFC 7515 §4.1.11).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use crate::error::ValidationError;

/// The longest token accepted, in bytes. Latchkey's tokens are well under
/// 2 KiB; identity providers with many claims stay under 8 KiB.
pub(crate) const MAX_TOKEN_LEN: usize = 16 * 1024;

/// The JOSE header fields the validator looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JoseHeader {
    pub(crate) alg: String,
    pub(crate) kid: Option<String>,
    pub(crate) typ: Option<String>,
}

/// A compact JWS, decoded but not verified.
#[derive(Debug)]
pub(crate) struct CompactJws<'a> {
    /// `BASE64URL(header) || '.' || BASE64URL(payload)`: the signed bytes.
    pub(crate) signing_input: &'a str,
    pub(crate) header: JoseHeader,
    pub(crate) claims: Map<String, Value>,
    pub(crate) signature: Vec<u8>,
}

/// Whether the token has the shape of a compact JWS (three base64url
/// parts), as opposed to an opaque token for introspection.
pub(crate) fn looks_like_jws(token: &str) -> bool {
    let mut parts = token.split('.');
    let header = parts.next().unwrap_or_default();
    parts.clone().count() == 2
        && URL_SAFE_NO_PAD
            .decode(header)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Map<String, Value>>(&bytes).ok())
            .is_some_and(|object| object.contains_key("alg"))
}

/// Decodes a compact JWS.
pub(crate) fn parse(token: &str) -> Result<CompactJws<'_>, ValidationError> {
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return Err(ValidationError::Malformed);
    }
    let mut parts = token.splitn(3, '.');
    let (Some(header_part), Some(payload_part), Some(signature_part)) =
        (parts.next(), parts.next(), parts.next())
    else {
        return Err(ValidationError::Malformed);
    };
    if signature_part.contains('.') {
        return Err(ValidationError::Malformed);
    }
    let signing_input = token
        .get(..header_part.len() + 1 + payload_part.len())
        .ok_or(ValidationError::Malformed)?;

    let header_object = decode_object(header_part)?;
    let header = header_fields(&header_object)?;
    let claims = decode_object(payload_part)?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature_part)
        .map_err(|_| ValidationError::Malformed)?;
    Ok(CompactJws {
        signing_input,
        header,
        claims,
        signature,
    })
}

fn decode_object(part: &str) -> Result<Map<String, Value>, ValidationError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| ValidationError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| ValidationError::Malformed)
}

fn header_fields(object: &Map<String, Value>) -> Result<JoseHeader, ValidationError> {
    if object.contains_key("crit") {
        return Err(ValidationError::UnsupportedAlgorithm);
    }
    let optional_text = |name: &str| match object.get(name) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(ValidationError::Malformed),
    };
    let alg = optional_text("alg")?.ok_or(ValidationError::Malformed)?;
    Ok(JoseHeader {
        alg,
        kid: optional_text("kid")?,
        typ: optional_text("typ")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    #[test]
    fn parses_the_three_parts() {
        let token = format!(
            "{}.{}.{}",
            encode(r#"{"alg":"ES256","kid":"k1","typ":"at+jwt"}"#),
            encode(r#"{"iss":"https://a"}"#),
            URL_SAFE_NO_PAD.encode([1_u8, 2, 3])
        );
        let jws = parse(&token).unwrap();
        assert_eq!(jws.header.alg, "ES256");
        assert_eq!(jws.header.kid.as_deref(), Some("k1"));
        assert_eq!(jws.header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(jws.claims["iss"], "https://a");
        assert_eq!(jws.signature, vec![1, 2, 3]);
        assert_eq!(jws.signing_input, &token[..token.rfind('.').unwrap()]);
        assert!(looks_like_jws(&token));
    }

    #[test]
    fn refuses_malformed_tokens() {
        let header = encode(r#"{"alg":"ES256"}"#);
        let payload = encode("{}");
        for token in [
            String::new(),
            "opaque".to_owned(),
            format!("{header}.{payload}"),
            format!("{header}.{payload}.sig.extra"),
            format!("{header}=.{payload}.c2ln"),
            format!("{}.{payload}.c2ln", encode("[]")),
            format!("{}.{payload}.c2ln", encode(r#"{"alg":1}"#)),
            format!("{}.{payload}.c2ln", encode(r#"{"kid":"x"}"#)),
            format!("{header}.{}.c2ln", encode("\"text\"")),
            format!("{header}.{payload}.c2ln+"),
            "a".repeat(MAX_TOKEN_LEN + 1),
        ] {
            assert_eq!(
                parse(&token).map(|_| ()),
                Err(ValidationError::Malformed),
                "{token}"
            );
        }
    }

    #[test]
    fn refuses_critical_extensions() {
        let token = format!(
            "{}.{}.c2ln",
            encode(r#"{"alg":"ES256","crit":["b64"],"b64":false}"#),
            encode("{}")
        );
        assert_eq!(
            parse(&token).map(|_| ()),
            Err(ValidationError::UnsupportedAlgorithm)
        );
    }

    #[test]
    fn opaque_tokens_do_not_look_like_jws() {
        assert!(!looks_like_jws("2YotnFZFEjr1zCsicMWpAA"));
        assert!(!looks_like_jws("a.b.c"));
        assert!(!looks_like_jws(&format!(
            "{}.x.y",
            encode(r#"{"typ":"JWT"}"#)
        )));
    }
}
