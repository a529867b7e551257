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

/// mimalloc's documented setting for how long freed memory is kept before it goes back to the
/// system (milliseconds; -1: never).
const PURGE_DELAY: &str = "MIMALLOC_PURGE_DELAY";

/// A rehearsal frees and reallocates gigabytes within moments while its twin runs: returned to
/// the system at mimalloc's default delay, each page comes back through a page fault that clears
/// it again (a tenth of the `large` rehearsal). A rehearsal is short-lived and its peak is what
/// it needs, so it keeps what it freed. The allocator reads its settings when the process
/// starts, so the rehearsal starts itself again with the setting made, once; should that fail it
/// runs as it is, only slower.
fn keep_freed_memory(argv0: &str) {
    use std::os::unix::process::CommandExt;
    if std::env::var_os(PURGE_DELAY).is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else { return };
    // `exec` returns only when it failed; logging is not set up yet, and nothing is lost.
    let _ = std::process::Command::new(exe).arg0(argv0).args(std::env::args_os().skip(1)).env(PURGE_DELAY, "-1").exec();
}

fn main() -> ExitCode {
    let argv0 = std::env::args_os().next().map(|a| a.to_string_lossy().into_owned()).unwrap_or_default();
    let parsed = k8s_upgrade::cli::conventions::command(&argv0)
        .try_get_matches()
        .and_then(|m| k8s_upgrade::cli::Cli::from_arg_matches(&m));
    match parsed {
        Ok(cli) => {
            if matches!(cli.command, k8s_upgrade::cli::Command::Rehearse(_)) {
                keep_freed_memory(&argv0);
            }
            k8s_upgrade::cli::run_as(cli, &argv0).into()
        }
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
