//! Helpers shared by the integration tests.

use std::process::{Command, Output};

/// The day every test evaluates support dates on, so snapshots do not age.
pub const TODAY: &str = "2026-11-26";

/// The built binary with a fixed "today" and no inherited K8S_UPGRADE_*, KUBECONFIG or in-cluster
/// settings.
pub fn command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_k8s-upgrade"));
    for (k, _) in std::env::vars() {
        // A test run inside a pod must not connect as that pod's ServiceAccount.
        if k.starts_with("K8S_UPGRADE_") || k == "KUBECONFIG" || k.starts_with("KUBERNETES_SERVICE_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("K8S_UPGRADE_TODAY", TODAY).env("NO_COLOR", "1");
    cmd
}

/// Runs the built binary with `args` (see [`command`]).
pub fn run(args: &[&str]) -> Output {
    command().args(args).output().expect("run k8s-upgrade")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
