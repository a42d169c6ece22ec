//! `cargo xtask e2e`: end-to-end runs against real MCP SDK clients.
//!
//! This is the slot for a later issue: the subcommand exists so that its name
//! and place are settled, and it fails loudly rather than pretending to pass.
//! When the suite lands, it is also added as a step to `test::TEST_STEPS`.

use anyhow::bail;

/// Fails: the end-to-end suite is not written yet.
pub(crate) fn run() -> anyhow::Result<()> {
    bail!(
        "`cargo xtask e2e` is not yet available: the MCP SDK end-to-end suite lands in a later issue"
    )
}
