//! `cargo xtask`: the one entry point for developers and CI (being written).

fn main() -> anyhow::Result<()> {
    anyhow::bail!("xtask is being written")
}
