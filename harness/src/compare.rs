//! placeholder
#[derive(clap::Args, Debug)]
pub struct CompareArgs {}
pub fn run(_a: CompareArgs) -> anyhow::Result<std::process::ExitCode> {
    todo!()
}
