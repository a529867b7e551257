//! The `k8s-upgrade` binary: parse, run, exit. Installed as `kubectl-upgrade` it is the kubectl
//! plugin `kubectl upgrade`, and its help says so.

use std::process::ExitCode;

use clap::FromArgMatches;
use clap::error::ErrorKind;

/// The simulator keeps every object of a cluster in memory (150,000 pods and more) and replaces
/// one on every write: glibc's allocator spends much of a large rehearsal consolidating its free
/// lists (the `large` rehearsal took 229 s, against 179 s with mimalloc, on the code of then).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let argv0 = std::env::args_os().next().map(|a| a.to_string_lossy().into_owned()).unwrap_or_default();
    let parsed = k8s_upgrade::cli::conventions::command(&argv0)
        .try_get_matches()
        .and_then(|m| k8s_upgrade::cli::Cli::from_arg_matches(&m));
    match parsed {
        Ok(cli) => k8s_upgrade::cli::run_as(cli, &argv0).into(),
        // Help and version are ours to print as clap styles them.
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => e.exit(),
        Err(e) if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
        // A usage error quotes what was typed: rendered without styling (which drops escape
        // sequences) and with any other control character made visible.
        Err(e) => {
            let text = e.render().to_string();
            eprint!("{}", k8s_upgrade::cli::printable::printable(&text));
            ExitCode::from(2)
        }
    }
}
