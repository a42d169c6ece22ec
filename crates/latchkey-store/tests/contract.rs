//! Runs the backend contract suite on [`MemoryStore`], and checks that the
//! suite's list of checks is complete.
//!
//! Every check gets a fresh store, as a SQL backend's test would get a fresh
//! database.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use latchkey_store::contract::{CHECKS, Fixture};
use latchkey_store::memory::MemoryStore;

async fn fixture() -> Fixture {
    Fixture::new(Arc::new(MemoryStore::new()))
}

/// In a module with a path to the factory, as a backend crate running
/// several backends in one test binary does.
mod memory {
    latchkey_store::contract_tests!(super::fixture);
}

/// The names of every `pub async fn` in the contract sources: the checks,
/// by the suite's own convention.
fn public_async_fns(directory: &Path, names: &mut Vec<String>) {
    for entry in std::fs::read_dir(directory).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            public_async_fns(&path, names);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            let source = std::fs::read_to_string(&path).unwrap();
            for line in source.lines() {
                if let Some(rest) = line.strip_prefix("pub async fn ") {
                    let name: String = rest
                        .chars()
                        .take_while(|character| character.is_alphanumeric() || *character == '_')
                        .collect();
                    names.push(name);
                }
            }
        }
    }
}

/// A check written but missing from the macro's list would silently never
/// run on any backend; this catches it.
#[test]
fn every_check_is_listed_once() {
    let source_root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut defined = Vec::new();
    public_async_fns(&source_root.join("contract"), &mut defined);
    let defined: BTreeSet<String> = defined.into_iter().collect();
    let listed: BTreeSet<String> = CHECKS.iter().map(|name| (*name).to_owned()).collect();
    assert_eq!(
        listed.len(),
        CHECKS.len(),
        "a check is listed twice in __latchkey_store_contract_checks!"
    );
    let unlisted: Vec<&String> = defined.difference(&listed).collect();
    let undefined: Vec<&String> = listed.difference(&defined).collect();
    assert!(
        unlisted.is_empty() && undefined.is_empty(),
        "checks defined but not listed in __latchkey_store_contract_checks!: {unlisted:?}; \
         listed but not defined as `pub async fn` in src/contract/: {undefined:?}"
    );
    assert!(
        defined.len() >= 40,
        "found only {} checks; is the source scan broken?",
        defined.len()
    );
}

/// The check functions are public, so a backend can run one directly.
#[tokio::test]
async fn a_check_runs_directly() {
    latchkey_store::contract::ping_succeeds(Arc::new(MemoryStore::new())).await;
    latchkey_store::contract::deny_list_semantics(Arc::new(MemoryStore::new())).await;
}
