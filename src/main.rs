//! The `k8s-upgrade` binary: parse, run, exit.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = k8s_upgrade::cli::Cli::parse();
    k8s_upgrade::cli::run(cli).into()
}
