//! placeholder
#[derive(clap::Args, Debug)]
pub struct ReportArgs {}
pub fn run(_a: ReportArgs) -> anyhow::Result<std::process::ExitCode> {
    todo!()
}
