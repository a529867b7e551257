//! `k8s-upgrade simulate`: serve a simulated cluster on loopback until Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::args::CatalogArgs;
use super::{CliError, Exit};
use crate::sim::{self, Scenario, SimOptions};

#[derive(Debug, Clone, Args)]
#[command(
    after_help = "The simulator serves HTTPS with a CA of its own and writes a kubeconfig (mode 0600) with that CA\nand a client certificate for the scenario's user (default: the admin kubernetes-admin).\n\nExamples:\n  k8s-upgrade simulate\n  k8s-upgrade simulate --scenario blocked --kubeconfig-out /tmp/sim.kubeconfig\n  KUBECONFIG=/tmp/sim.kubeconfig kubectl get nodes"
)]
pub struct SimulateArgs {
    /// A built-in scenario (demo, blocked, pools, large) or a scenario file (docs/scenarios.md).
    #[arg(long, value_name = "NAME|FILE", default_value = "demo", env = "K8S_UPGRADE_SCENARIO")]
    pub scenario: String,

    /// Address to listen on; loopback only.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0", env = "K8S_UPGRADE_LISTEN")]
    pub listen: SocketAddr,

    /// Where to write a kubeconfig for kubectl and k8s-upgrade (default: in the temp directory).
    #[arg(long, value_name = "FILE", env = "K8S_UPGRADE_KUBECONFIG_OUT")]
    pub kubeconfig_out: Option<PathBuf>,

    /// Serve plain HTTP instead of HTTPS, for debugging with tools that cannot speak TLS.
    /// Authentication and RBAC still apply (use a scenario token, or act as system:anonymous).
    #[arg(long)]
    pub insecure_http: bool,

    /// Multiply every simulated delay by F (0.1 makes the cluster ten times faster).
    #[arg(long, value_name = "F", default_value_t = 1.0, env = "K8S_UPGRADE_TIME_SCALE")]
    pub time_scale: f64,

    #[command(flatten)]
    pub catalog: CatalogArgs,
}

pub fn parse_time_scale(f: f64) -> Result<f64, CliError> {
    if f.is_finite() && f > 0.0 && f <= 1000.0 {
        Ok(f)
    } else {
        Err(CliError::usage(format!("--time-scale {f}: expected a number above 0 and at most 1000")))
    }
}

pub fn run(args: SimulateArgs) -> Result<Exit, CliError> {
    let time_scale = parse_time_scale(args.time_scale)?;
    if !args.listen.ip().is_loopback() {
        return Err(CliError::usage(format!(
            "--listen {}: the simulator binds loopback addresses only; use 127.0.0.1:PORT",
            args.listen
        )));
    }
    let catalog = Arc::new(args.catalog.load()?);
    let scenario = Scenario::load(&args.scenario).map_err(|e| CliError::error(e.to_string()))?;
    let name = scenario.name.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::error(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async move {
        let transport = if args.insecure_http { sim::Transport::PlainHttp } else { sim::Transport::default() };
        let running = sim::start(scenario, catalog, SimOptions { listen: args.listen, time_scale, transport })
            .await
            .map_err(|e| CliError::error(e.to_string()))?;
        let path = args
            .kubeconfig_out
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join(format!("k8s-upgrade-sim-{}.kubeconfig", running.addr.port())));
        running.write_kubeconfig(&path).map_err(|e| CliError::error(e.to_string()))?;
        let version = running.sim.server_version();
        let nodes = running.sim.store.count(&sim::StorageKey::core("nodes"));
        let pods = running.sim.store.count(&sim::StorageKey::core("pods"));
        super::print_stdout(&format!(
            "simulator '{name}' listening on {} (Kubernetes {version}, {}, {nodes} nodes, {pods} pods)\nkubeconfig: {}\ntry: KUBECONFIG={} kubectl get nodes\nstats: curl {}{}/sim/stats\nCtrl-C stops it.\n",
            running.url(),
            running.sim.distro,
            path.display(),
            path.display(),
            if args.insecure_http { "" } else { "-k " },
            running.url(),
        ))?;
        // Serves until Ctrl-C, or until the controllers panic: then the simulator has stopped
        // serving and the command fails with the reason.
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = running.failed() => {}
        }
        let stopped = running.shutdown().await;
        let _ = std::fs::remove_file(&path);
        stopped.map_err(|e| CliError::error(e.to_string()))
    })?;
    Ok(Exit::Success)
}
