//! The command line: clap types, command handlers, renderers and exit codes.
//!
//! `main.rs` hands the parsed [`Cli`] to [`run`], which converts raw arguments into validated
//! requests, calls the pure library, renders the answer on stdout and turns every error into one
//! line on stderr with the documented exit code (`docs/exit-codes.md`). This is the only module
//! that reads the clock, the environment or user-given directories.

mod apply;
mod args;
pub mod conventions;
mod fleet;
mod helm_fix;
mod inventory;
mod job;
pub mod logging;
mod paths;
mod plan;
pub mod printable;
mod prompt;
mod provider;
mod rbac;
mod rehearse;
pub mod render;
mod report;
mod simulate;
mod source;

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use args::{CatalogArgs, OutputFormat};

/// Documented exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success = 0,
    Error = 1,
    Usage = 2,
    Blockers = 3,
    /// `apply` stopped because the maintenance window would close.
    Window = 4,
    /// `apply` stopped on Ctrl-C at a safe point.
    Interrupted = 130,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

/// An error as the user sees it: one line, and the exit code it maps to.
#[derive(Debug)]
pub struct CliError {
    pub exit: Exit,
    pub message: String,
}

impl CliError {
    pub fn usage(message: impl Into<String>) -> Self {
        Self { exit: Exit::Usage, message: message.into() }
    }

    pub fn error(message: impl Into<String>) -> Self {
        Self { exit: Exit::Error, message: message.into() }
    }
}

impl From<crate::catalog::CatalogError> for CliError {
    fn from(e: crate::catalog::CatalogError) -> Self {
        CliError::error(e.to_string())
    }
}

impl From<crate::graph::PathError> for CliError {
    fn from(e: crate::graph::PathError) -> Self {
        CliError::error(e.to_string())
    }
}

/// Plan and perform Kubernetes cluster upgrades.
///
/// k8s-upgrade knows which version hops each distribution supports, which APIs disappear on the
/// way, which add-ons must move first and where node rolls belong.
#[derive(Debug, Parser)]
#[command(name = "k8s-upgrade", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub logging: logging::LogArgs,

    /// Largest input file read, in bytes, for every kind at once (plans, journals, inventories,
    /// scenarios, catalog files); each has its own default otherwise.
    #[arg(long, value_name = "BYTES", global = true, env = "K8S_UPGRADE_MAX_INPUT_BYTES")]
    pub max_input_bytes: Option<u64>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Find the supported upgrade path between two versions on a distribution.
    ///
    /// Control-plane hops go one minor at a time (or as the distribution allows) and land on the
    /// newest patch of each minor; node rolls are placed so that kubelets stay inside the skew
    /// window with as few rolls as possible.
    Paths(paths::PathsArgs),

    /// Plan an upgrade: the path, removed APIs per hop, and each fix placed before its hop.
    ///
    /// Works offline from versions and manifests (--manifests); exits 3 when something blocks.
    Plan(plan::PlanArgs),

    /// Perform an upgrade: control plane first, then rolling node batches, with gates, a
    /// journal, resume and a cluster lock.
    ///
    /// Plans first (or reads --plan), shows the plan and asks before it starts; --yes runs
    /// unattended. Ctrl-C stops at the next safe point; `apply --resume` continues.
    Apply(Box<apply::ApplyArgs>),

    /// Read a cluster once and print what the planner knows about it (for offline planning).
    Inventory(inventory::InventoryArgs),

    /// Print least-privilege RBAC roles for plan or apply, as YAML for `kubectl apply -f -`.
    ///
    /// Generated from the same table the tool's permission preflights check, with a reason for
    /// every rule.
    Rbac(rbac::RbacArgs),

    /// Rewrite a Helm release whose stored manifest uses APIs the cluster stops serving.
    ///
    /// As `helm mapkubeapis`: each removed API moves to its replacement (a document with none is
    /// dropped), written as a new revision (N+1, deployed) with the previous one superseded, so
    /// `helm upgrade` works again. Prints the manifest diff first; --dry-run stops there.
    HelmFix(helm_fix::HelmFixArgs),

    /// Serve a simulated Kubernetes cluster on loopback (real kubectl works against it).
    ///
    /// Built-in scenarios: demo (a kubeadm cluster a few minors behind), blocked (a budget that
    /// never allows a disruption), pools (30 workers in three pools, budgets on every workload)
    /// and large (5,000 nodes, 150,000 pods).
    Simulate(simulate::SimulateArgs),

    /// Rehearse an upgrade on a simulated twin of the cluster and forecast it: time per step
    /// and in total against the window, drains that stall, pods with no room, replicas lost.
    ///
    /// Reads the cluster (only reads), builds its twin, runs apply's executor on it in virtual
    /// time with the same flags, and exits 3 when the run would not start, stall, stop or miss
    /// the window.
    Rehearse(Box<rehearse::RehearseArgs>),

    /// Print a Job (with its ServiceAccount and roles) that runs `apply` inside the cluster.
    Job(Box<job::JobArgs>),

    /// Plan many clusters at once (one table), or print one upgrade Job per cluster.
    Fleet(fleet::FleetArgs),

    /// Print the shell completion script for bash, zsh, fish, powershell or elvish.
    Completions(conventions::CompletionsArgs),

    /// Write the man pages (the tool and each subcommand) generated from these definitions.
    Man(conventions::ManArgs),
}

/// Runs a parsed command line and returns the exit code. Errors are printed here, as one line.
pub fn run(cli: Cli) -> Exit {
    run_as(cli, "k8s-upgrade")
}

/// [`run`] for a binary invoked as `argv0` (`kubectl-upgrade`: the kubectl plugin).
pub fn run_as(cli: Cli, argv0: &str) -> Exit {
    logging::init(&cli.logging);
    if let Some(bytes) = cli.max_input_bytes {
        crate::limits::set_override(bytes);
    }
    let result = match cli.command {
        Command::Paths(args) => paths::run(args),
        Command::Plan(args) => plan::run(args),
        Command::Apply(args) => apply::run(*args),
        Command::Rehearse(args) => rehearse::run(*args),
        Command::Simulate(args) => simulate::run(args),
        Command::Inventory(args) => inventory::run(args),
        Command::Rbac(args) => rbac::run(args),
        Command::HelmFix(args) => helm_fix::run(args),
        Command::Job(args) => job::run(*args),
        Command::Fleet(args) => fleet::run(args),
        Command::Completions(args) => conventions::completions(args, argv0),
        Command::Man(args) => conventions::man(args),
    };
    match result {
        Ok(exit) => exit,
        Err(e) => {
            logging::error(&e.message);
            e.exit
        }
    }
}

/// Writes what a run did to stdout; when stdout is closed (`| head -1`) or cannot be written, to
/// stderr instead: the summary of a run says what it left behind (cordoned nodes, how to resume)
/// and must not be lost with the pipe.
pub(crate) fn print_result(text: &str) {
    let text = printable::printable(text);
    let mut out = std::io::stdout().lock();
    if out.write_all(text.as_bytes()).and_then(|()| out.flush()).is_err() {
        logging::say(text.trim_end_matches('\n'));
    }
}

/// Writes a rendered document to stdout; a closed pipe (`| head`) is not an error.
pub(crate) fn print_stdout(text: &str) -> Result<(), CliError> {
    let text = printable::printable(text);
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::error(format!("cannot write to stdout: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
