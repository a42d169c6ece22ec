//! OAuth scopes (RFC 6749 §3.3) and configurable scope hierarchies.
//!
//! Invariants:
//! - a [`Scope`] is one scope-token: 1 to [`MAX_SCOPE_LEN`] characters of
//!   %x21 / %x23-5B / %x5D-7E (printable ASCII except space, `"` and `\`);
//! - a [`ScopeSet`] holds distinct scopes in first-seen order, and a set
//!   parsed from untrusted input holds at most [`MAX_SCOPES`] of them.
//!
//! Parsing tolerance: the ABNF puts exactly one space between tokens, but
//! [`ScopeSet::parse`] also accepts runs of spaces and leading or trailing
//! spaces, because clients that join lists naively send them and nothing is
//! ambiguous about them. Only the space (%x20) separates; a tab or a newline
//! is an invalid character. Output ([`Display`](std::fmt::Display)) always
//! uses the canonical single space. An empty or all-space string is the
//! empty set: whether that means "the default scope" is the caller's policy
//! (RFC 6749 §3.3).
//!
//! [`ScopeHierarchy`] decides whether granted scopes cover required ones.
//! It is flat by default (a scope covers only itself); a separator makes
//! `files` cover `files:read` and `files:read:x`; explicit rules make one
//! scope imply another (`admin` implies `files`). MCP requires resource
//! servers to honour such hierarchies when checking tokens.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{ErrorCode, OAuthError};

/// The longest scope-token accepted, in characters.
pub const MAX_SCOPE_LEN: usize = 256;
/// The most scopes accepted in one parsed scope string.
pub const MAX_SCOPES: usize = 64;

/// Why a scope or scope string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// An empty scope-token.
    #[error("a scope must not be empty")]
    Empty,
    /// A scope-token longer than [`MAX_SCOPE_LEN`].
    #[error("a scope is longer than {MAX_SCOPE_LEN} characters")]
    TooLong,
    /// A character outside the scope-token set.
    #[error(
        "scope contains a character that RFC 6749 section 3.3 does not allow (position {position})"
    )]
    InvalidCharacter {
        /// The zero-based character position in the input.
        position: usize,
    },
    /// More than [`MAX_SCOPES`] distinct scopes.
    #[error("more than {MAX_SCOPES} scopes requested")]
    TooMany,
}

impl ScopeError {
    /// Always `invalid_scope` (RFC 6749 §4.1.2.1, §5.2).
    pub fn error_code(&self) -> ErrorCode {
        ErrorCode::InvalidScope
    }
}

impl From<ScopeError> for OAuthError {
    fn from(error: ScopeError) -> OAuthError {
        OAuthError::with_description(error.error_code(), error.to_string())
    }
}

/// Whether `character` may appear in a scope-token (RFC 6749 §3.3).
pub fn is_scope_char(character: char) -> bool {
    matches!(character, '\x21' | '\x23'..='\x5b' | '\x5d'..='\x7e')
}

/// One scope-token, such as `files:read`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope(String);

impl Scope {
    /// Parses one scope-token.
    ///
    /// ```
    /// use latchkey_protocol::scope::Scope;
    ///
    /// assert_eq!(Scope::parse("files:read").unwrap().as_str(), "files:read");
    /// assert!(Scope::parse("two words").is_err());
    /// assert!(Scope::parse("quote\"d").is_err());
    /// ```
    pub fn parse(token: &str) -> Result<Scope, ScopeError> {
        if token.is_empty() {
            return Err(ScopeError::Empty);
        }
        if let Some((position, _)) = token
            .chars()
            .enumerate()
            .find(|(_, character)| !is_scope_char(*character))
        {
            return Err(ScopeError::InvalidCharacter { position });
        }
        // All characters are ASCII now, so bytes and characters agree.
        if token.len() > MAX_SCOPE_LEN {
            return Err(ScopeError::TooLong);
        }
        Ok(Scope(token.to_owned()))
    }

    /// The scope-token.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Scope {
    type Err = ScopeError;

    fn from_str(token: &str) -> Result<Scope, ScopeError> {
        Scope::parse(token)
    }
}

impl AsRef<str> for Scope {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Scope, D::Error> {
        let token = String::deserialize(deserializer)?;
        Scope::parse(&token).map_err(serde::de::Error::custom)
    }
}

/// A set of distinct scopes in first-seen order.
///
/// Equality is set equality: `"a b"` equals `"b a"`.
///
/// ```
/// use latchkey_protocol::scope::ScopeSet;
///
/// let requested = ScopeSet::parse("files:read  mcp files:read ").unwrap();
/// assert_eq!(requested.to_string(), "files:read mcp");
/// let granted = ScopeSet::parse("mcp files:read files:write").unwrap();
/// assert!(requested.is_subset_of(&granted));
/// assert_eq!(granted.intersection(&requested).to_string(), "mcp files:read");
/// ```
#[derive(Debug, Clone, Default)]
pub struct ScopeSet {
    scopes: Vec<Scope>,
}

impl ScopeSet {
    /// The empty set.
    pub fn new() -> ScopeSet {
        ScopeSet::default()
    }

    /// Parses a space-delimited scope string (see the module docs for the
    /// tolerance rules), dropping duplicates.
    pub fn parse(scope: &str) -> Result<ScopeSet, ScopeError> {
        let mut set = ScopeSet::new();
        let mut position = 0_usize;
        for token in scope.split(' ') {
            if !token.is_empty() {
                let parsed = Scope::parse(token).map_err(|error| match error {
                    ScopeError::InvalidCharacter { position: inner } => {
                        ScopeError::InvalidCharacter {
                            position: position + inner,
                        }
                    }
                    other => other,
                })?;
                set.insert(parsed)?;
            }
            position += token.chars().count() + 1;
        }
        Ok(set)
    }

    /// Builds a set from scopes, dropping duplicates; refuses more than
    /// [`MAX_SCOPES`] distinct scopes.
    pub fn try_from_scopes(
        scopes: impl IntoIterator<Item = Scope>,
    ) -> Result<ScopeSet, ScopeError> {
        let mut set = ScopeSet::new();
        for scope in scopes {
            set.insert(scope)?;
        }
        Ok(set)
    }

    /// Adds a scope; `Ok(false)` if it was already present. Refuses to grow
    /// past [`MAX_SCOPES`].
    pub fn insert(&mut self, scope: Scope) -> Result<bool, ScopeError> {
        if self.scopes.contains(&scope) {
            return Ok(false);
        }
        if self.scopes.len() >= MAX_SCOPES {
            return Err(ScopeError::TooMany);
        }
        self.scopes.push(scope);
        Ok(true)
    }

    /// Whether the set holds exactly this scope-token (no hierarchy).
    pub fn contains(&self, scope: &str) -> bool {
        self.scopes
            .iter()
            .any(|candidate| candidate.as_str() == scope)
    }

    /// The scopes in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Scope> {
        self.scopes.iter()
    }

    /// The number of scopes.
    pub fn len(&self) -> usize {
        self.scopes.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.scopes.is_empty()
    }

    /// Whether every scope here is also in `other` (exact tokens, no
    /// hierarchy; see [`ScopeHierarchy::narrows`] for that).
    pub fn is_subset_of(&self, other: &ScopeSet) -> bool {
        self.scopes
            .iter()
            .all(|scope| other.contains(scope.as_str()))
    }

    /// The scopes present in both sets, in this set's order.
    pub fn intersection(&self, other: &ScopeSet) -> ScopeSet {
        self.filtered(|scope| other.contains(scope.as_str()))
    }

    /// The scopes of this set that are not in `other`, in this set's order.
    pub fn difference(&self, other: &ScopeSet) -> ScopeSet {
        self.filtered(|scope| !other.contains(scope.as_str()))
    }

    /// This set followed by the scopes of `other` it lacks. Not capped:
    /// the cap applies to untrusted input, and both operands were capped.
    pub fn union(&self, other: &ScopeSet) -> ScopeSet {
        let mut scopes = self.scopes.clone();
        for scope in &other.scopes {
            if !scopes.contains(scope) {
                scopes.push(scope.clone());
            }
        }
        ScopeSet { scopes }
    }

    fn filtered(&self, keep: impl Fn(&Scope) -> bool) -> ScopeSet {
        ScopeSet {
            scopes: self
                .scopes
                .iter()
                .filter(|scope| keep(scope))
                .cloned()
                .collect(),
        }
    }
}

impl PartialEq for ScopeSet {
    fn eq(&self, other: &ScopeSet) -> bool {
        self.len() == other.len() && self.is_subset_of(other)
    }
}

impl Eq for ScopeSet {}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, scope) in self.scopes.iter().enumerate() {
            if index > 0 {
                f.write_str(" ")?;
            }
            f.write_str(scope.as_str())?;
        }
        Ok(())
    }
}

impl FromStr for ScopeSet {
    type Err = ScopeError;

    fn from_str(scope: &str) -> Result<ScopeSet, ScopeError> {
        ScopeSet::parse(scope)
    }
}

impl<'a> IntoIterator for &'a ScopeSet {
    type Item = &'a Scope;
    type IntoIter = std::slice::Iter<'a, Scope>;

    fn into_iter(self) -> Self::IntoIter {
        self.scopes.iter()
    }
}

impl IntoIterator for ScopeSet {
    type Item = Scope;
    type IntoIter = std::vec::IntoIter<Scope>;

    fn into_iter(self) -> Self::IntoIter {
        self.scopes.into_iter()
    }
}

impl FromIterator<Scope> for ScopeSet {
    /// Collects scopes, dropping duplicates. Not capped: use
    /// [`ScopeSet::try_from_scopes`] for untrusted input.
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> ScopeSet {
        let mut scopes: Vec<Scope> = Vec::new();
        for scope in iter {
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        ScopeSet { scopes }
    }
}

impl Serialize for ScopeSet {
    /// Serializes as the space-delimited string, as in a token response's
    /// `scope` (RFC 6749 §5.1) or a JWT `scope` claim (RFC 9068 §2.2.3).
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ScopeSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ScopeSet, D::Error> {
        let scope = String::deserialize(deserializer)?;
        ScopeSet::parse(&scope).map_err(serde::de::Error::custom)
    }
}

/// Which scopes cover which: flat by default, optionally hierarchical by a
/// separator, plus explicit implication rules.
///
/// ```
/// use latchkey_protocol::scope::{Scope, ScopeHierarchy, ScopeSet};
///
/// let hierarchy = ScopeHierarchy::new()
///     .with_separator(':')
///     .imply("admin", "files")
///     .unwrap();
/// let granted = ScopeSet::parse("admin").unwrap();
/// assert!(hierarchy.satisfies(&granted, &Scope::parse("files:read:x").unwrap()));
/// assert!(!hierarchy.satisfies(&granted, &Scope::parse("billing").unwrap()));
///
/// let required = ScopeSet::parse("files:write billing mail").unwrap();
/// assert_eq!(hierarchy.missing(&granted, &required).to_string(), "billing mail");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeHierarchy {
    separator: Option<char>,
    implications: Vec<(Scope, Scope)>,
}

impl ScopeHierarchy {
    /// A flat hierarchy: every scope covers only itself.
    pub fn new() -> ScopeHierarchy {
        ScopeHierarchy::default()
    }

    /// Makes a scope cover every scope that extends it by `separator` and
    /// more: with `':'`, `files` covers `files:read` and `files:read:x`, but
    /// not `filesystem`. A separator that cannot occur in a scope-token
    /// (such as a space) simply never matches.
    pub fn with_separator(mut self, separator: char) -> ScopeHierarchy {
        self.separator = Some(separator);
        self
    }

    /// Adds the rule "`broader` implies `narrower`". Rules chain
    /// (`admin` ⇒ `files` ⇒ ...) and combine with the separator (`admin`
    /// then also covers `files:read`). Refuses invalid scope-tokens.
    pub fn imply(self, broader: &str, narrower: &str) -> Result<ScopeHierarchy, ScopeError> {
        Ok(self.imply_scope(Scope::parse(broader)?, Scope::parse(narrower)?))
    }

    /// Adds the rule "`broader` implies `narrower`" for parsed scopes.
    pub fn imply_scope(mut self, broader: Scope, narrower: Scope) -> ScopeHierarchy {
        if !self
            .implications
            .iter()
            .any(|(b, n)| *b == broader && *n == narrower)
        {
            self.implications.push((broader, narrower));
        }
        self
    }

    /// The separator, if the hierarchy has one.
    pub fn separator(&self) -> Option<char> {
        self.separator
    }

    /// Whether the granted scopes cover `required`.
    pub fn satisfies(&self, granted: &ScopeSet, required: &Scope) -> bool {
        self.closure(granted)
            .iter()
            .any(|scope| self.directly_covers(scope, required))
    }

    /// The required scopes that the granted ones do not cover, in required
    /// order: what a 403 `insufficient_scope` challenge should list
    /// (RFC 6750 §3.1).
    pub fn missing(&self, granted: &ScopeSet, required: &ScopeSet) -> ScopeSet {
        let closure = self.closure(granted);
        required.filtered(|needed| {
            !closure
                .iter()
                .any(|scope| self.directly_covers(scope, needed))
        })
    }

    /// Whether a refresh request for `requested` stays within `granted`:
    /// every requested scope must be covered (RFC 6749 §6: the new scope
    /// must not include any scope not originally granted).
    pub fn narrows(&self, requested: &ScopeSet, granted: &ScopeSet) -> bool {
        self.missing(granted, requested).is_empty()
    }

    /// Every scope the granted set reaches through the implication rules,
    /// the granted scopes first. The loop adds at least one rule's target
    /// per pass, so it ends after at most as many passes as there are rules,
    /// cycles included.
    fn closure<'a>(&'a self, granted: &'a ScopeSet) -> Vec<&'a Scope> {
        let mut reached: Vec<&Scope> = granted.iter().collect();
        loop {
            let mut grew = false;
            for (broader, narrower) in &self.implications {
                if !reached.contains(&narrower)
                    && reached
                        .iter()
                        .any(|scope| self.directly_covers(scope, broader))
                {
                    reached.push(narrower);
                    grew = true;
                }
            }
            if !grew {
                return reached;
            }
        }
    }

    /// Equality, or extension by the separator.
    fn directly_covers(&self, broader: &Scope, narrower: &Scope) -> bool {
        if broader == narrower {
            return true;
        }
        let Some(separator) = self.separator else {
            return false;
        };
        narrower
            .as_str()
            .strip_prefix(broader.as_str())
            .is_some_and(|rest| rest.starts_with(separator))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(scope: &str) -> ScopeSet {
        ScopeSet::parse(scope).unwrap()
    }

    fn scope(token: &str) -> Scope {
        Scope::parse(token).unwrap()
    }

    #[test]
    fn scope_tokens_follow_the_rfc_6749_abnf() {
        // Every printable ASCII character except space, '"' and '\'.
        for byte in 0x21_u8..=0x7e {
            let character = char::from(byte);
            let result = Scope::parse(&character.to_string());
            if character == '"' || character == '\\' {
                assert!(result.is_err(), "{character}");
            } else {
                assert!(result.is_ok(), "{character}");
            }
        }
        assert_eq!(Scope::parse(""), Err(ScopeError::Empty));
        assert_eq!(
            Scope::parse("a b"),
            Err(ScopeError::InvalidCharacter { position: 1 })
        );
        assert!(Scope::parse("é").is_err());
        assert!(Scope::parse("tab\t").is_err());
        assert!(Scope::parse(&"a".repeat(MAX_SCOPE_LEN)).is_ok());
        assert_eq!(
            Scope::parse(&"a".repeat(MAX_SCOPE_LEN + 1)),
            Err(ScopeError::TooLong)
        );
    }

    #[test]
    fn scope_strings_dedup_keep_order_and_tolerate_extra_spaces() {
        assert_eq!(set("b a b c a").to_string(), "b a c");
        assert_eq!(set("  a   b ").to_string(), "a b");
        assert!(set("").is_empty());
        assert!(set("   ").is_empty());
        assert_eq!(set("openid profile email").len(), 3);
    }

    #[test]
    fn only_the_space_separates() {
        assert_eq!(
            ScopeSet::parse("a\tb"),
            Err(ScopeError::InvalidCharacter { position: 1 })
        );
        assert_eq!(
            ScopeSet::parse("ab cd\ne"),
            Err(ScopeError::InvalidCharacter { position: 5 })
        );
        assert!(ScopeSet::parse("a\u{a0}b").is_err());
    }

    #[test]
    fn scope_count_is_capped() {
        let many: Vec<String> = (0..=MAX_SCOPES).map(|index| format!("s{index}")).collect();
        assert_eq!(ScopeSet::parse(&many.join(" ")), Err(ScopeError::TooMany));
        assert_eq!(
            ScopeSet::parse(&many[..MAX_SCOPES].join(" "))
                .unwrap()
                .len(),
            MAX_SCOPES
        );
        // Duplicates do not count towards the cap.
        assert_eq!(ScopeSet::parse(&"a ".repeat(1000)).unwrap().len(), 1);
    }

    #[test]
    fn set_operations() {
        let granted = set("a b c");
        assert!(set("c a").is_subset_of(&granted));
        assert!(!set("a d").is_subset_of(&granted));
        assert!(set("").is_subset_of(&granted));
        assert_eq!(set("d c b").intersection(&granted).to_string(), "c b");
        assert_eq!(set("d c b").difference(&granted).to_string(), "d");
        assert_eq!(granted.union(&set("d a")).to_string(), "a b c d");
        assert_eq!(set("a b"), set("b a"));
        assert_ne!(set("a b"), set("a"));
        assert!(granted.contains("b"));
        assert!(!granted.contains("b c"));
        let collected: Vec<&str> = granted.iter().map(Scope::as_str).collect();
        assert_eq!(collected, ["a", "b", "c"]);
        let owned: ScopeSet = vec![scope("x"), scope("y"), scope("x")]
            .into_iter()
            .collect();
        assert_eq!(owned.to_string(), "x y");
    }

    #[test]
    fn insert_reports_novelty_and_respects_the_cap() {
        let mut scopes = ScopeSet::new();
        assert_eq!(scopes.insert(scope("a")), Ok(true));
        assert_eq!(scopes.insert(scope("a")), Ok(false));
        let full =
            ScopeSet::try_from_scopes((0..MAX_SCOPES).map(|index| scope(&format!("s{index}"))))
                .unwrap();
        let mut full = full;
        assert_eq!(full.insert(scope("extra")), Err(ScopeError::TooMany));
    }

    #[test]
    fn serde_uses_the_space_delimited_string() {
        let scopes = set("mcp files:read");
        assert_eq!(
            serde_json::to_string(&scopes).unwrap(),
            "\"mcp files:read\""
        );
        let back: ScopeSet = serde_json::from_str("\"files:read mcp\"").unwrap();
        assert_eq!(back, scopes);
        assert!(serde_json::from_str::<ScopeSet>("\"bad\\\"quote\"").is_err());
        assert_eq!(serde_json::to_string(&scope("x")).unwrap(), "\"x\"");
        assert!(serde_json::from_str::<Scope>("\"a b\"").is_err());
    }

    #[test]
    fn the_default_hierarchy_is_flat() {
        let hierarchy = ScopeHierarchy::new();
        assert!(hierarchy.satisfies(&set("files"), &scope("files")));
        assert!(!hierarchy.satisfies(&set("files"), &scope("files:read")));
        assert!(!hierarchy.satisfies(&set(""), &scope("files")));
    }

    #[test]
    fn a_separator_makes_prefixes_cover_extensions() {
        let hierarchy = ScopeHierarchy::new().with_separator(':');
        let granted = set("files");
        assert!(hierarchy.satisfies(&granted, &scope("files:read")));
        assert!(hierarchy.satisfies(&granted, &scope("files:read:x")));
        assert!(!hierarchy.satisfies(&granted, &scope("filesystem")));
        assert!(!hierarchy.satisfies(&granted, &scope("file")));
        // A narrower grant does not cover the broader scope.
        assert!(!hierarchy.satisfies(&set("files:read"), &scope("files")));
        assert!(!hierarchy.satisfies(&set("files:read"), &scope("files:write")));
    }

    #[test]
    fn explicit_rules_chain_and_combine_with_the_separator() {
        let hierarchy = ScopeHierarchy::new()
            .with_separator(':')
            .imply("admin", "files")
            .unwrap()
            .imply("files:admin", "billing")
            .unwrap();
        assert!(hierarchy.satisfies(&set("admin"), &scope("files:write")));
        // admin => files, files covers files:admin, files:admin => billing.
        assert!(hierarchy.satisfies(&set("admin"), &scope("billing")));
        assert!(hierarchy.satisfies(&set("files"), &scope("billing:read")));
        assert!(!hierarchy.satisfies(&set("files:read"), &scope("billing")));
        assert!(!hierarchy.satisfies(&set("billing"), &scope("admin")));
    }

    #[test]
    fn implication_cycles_terminate() {
        let hierarchy = ScopeHierarchy::new()
            .imply("a", "b")
            .unwrap()
            .imply("b", "a")
            .unwrap()
            .imply("b", "c")
            .unwrap();
        assert!(hierarchy.satisfies(&set("a"), &scope("c")));
        assert!(hierarchy.satisfies(&set("b"), &scope("a")));
        assert!(!hierarchy.satisfies(&set("c"), &scope("a")));
        assert!(ScopeHierarchy::new().imply("a b", "c").is_err());
    }

    #[test]
    fn missing_lists_every_uncovered_scope_for_insufficient_scope() {
        let hierarchy = ScopeHierarchy::new().with_separator(':');
        let granted = set("files:read mcp");
        let required = set("mcp files:read:x files:write tools");
        assert_eq!(
            hierarchy.missing(&granted, &required).to_string(),
            "files:write tools"
        );
        assert!(hierarchy.missing(&granted, &set("mcp")).is_empty());
    }

    #[test]
    fn refresh_may_narrow_but_never_widen() {
        let hierarchy = ScopeHierarchy::new().with_separator(':');
        let granted = set("files mcp");
        assert!(hierarchy.narrows(&set("mcp"), &granted));
        assert!(hierarchy.narrows(&set("files:read"), &granted));
        assert!(hierarchy.narrows(&set(""), &granted));
        assert!(!hierarchy.narrows(&set("mcp admin"), &granted));
        assert!(!ScopeHierarchy::new().narrows(&set("files:read"), &granted));
    }

    #[test]
    fn errors_map_to_invalid_scope() {
        let error = OAuthError::from(ScopeError::TooMany);
        assert_eq!(error.code(), ErrorCode::InvalidScope);
    }
}
