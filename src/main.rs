//! The `k8s-upgrade` binary: parse, run, exit. Installed as `kubectl-upgrade` it is the kubectl
//! plugin `kubectl upgrade`, and its help says so.

use std::process::ExitCode;

use clap::FromArgMatches;
use clap::error::ErrorKind;

/// The simulator keeps every object of a cluster in memory (150,000 pods and more) and replaces
/// one on every write: glibc's allocator spends much of a large rehearsal consolidating its free
/// lists (the `large` rehearsal: 229 s, against 179 s with mimalloc).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long freed memory stays with the process before mimalloc gives it back to the system.
/// At its default (10 ms) a rehearsal's churn of replaced objects hands pages back and takes
/// them again within the same second, and the kernel zeroes every page taken again: 13% of a
/// 1,000-node rehearsal went on zeroing pages. A second keeps the churn in the process and
/// still returns memory once a run settles.
const ALLOCATOR_PURGE_DELAY_MS: std::ffi::c_long = 1_000;

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (v2 and v3 alike); the bindings name
/// the options around it but not this one.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

#[allow(unsafe_code)]
fn tune_allocator() {
    // SAFETY: mi_option_set stores a value in mimalloc's option table (an atomic store); the
    // option is valid for the linked mimalloc, and no pointer crosses the call.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, ALLOCATOR_PURGE_DELAY_MS) }
}

fn main() -> ExitCode {
    tune_allocator();
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
