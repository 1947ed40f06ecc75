//! `portcullis demo`.
pub fn run(_port: u16) -> anyhow::Result<()> {
    anyhow::bail!("todo")
}
