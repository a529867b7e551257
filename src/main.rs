//! The `k8s-upgrade` binary: parse, run, exit. Installed as `kubectl-upgrade` it is the kubectl
//! plugin `kubectl upgrade`, and its help says so.

use std::process::ExitCode;

use clap::FromArgMatches;

fn main() -> ExitCode {
    let argv0 = std::env::args_os().next().map(|a| a.to_string_lossy().into_owned()).unwrap_or_default();
    let matches = k8s_upgrade::cli::conventions::command(&argv0).get_matches();
    let cli = match k8s_upgrade::cli::Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    k8s_upgrade::cli::run_as(cli, &argv0).into()
}
