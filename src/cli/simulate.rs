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

    /// Address to listen on; loopback only (`localhost:PORT` is 127.0.0.1:PORT).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0", env = "K8S_UPGRADE_LISTEN", value_parser = parse_listen)]
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

    /// Serve the twin of a cluster instead of a scenario: its nodes, workloads (with their
    /// placement rules and where their pods run) and budgets, from an inventory saved with
    /// `k8s-upgrade inventory -o yaml`.
    #[arg(long, value_name = "FILE", conflicts_with = "scenario")]
    pub from_inventory: Option<PathBuf>,

    /// With --from-inventory: how long a node's upgrade takes in the twin (default: the median
    /// of the node restarts the inventory holds, else 90s).
    #[arg(long, value_name = "DURATION", requires = "from_inventory", value_parser = super::apply::parse_duration)]
    pub node_restart: Option<std::time::Duration>,

    /// With --from-inventory: write the twin's scenario to FILE (YAML), to read, edit or serve
    /// again with --scenario FILE.
    #[arg(long, value_name = "FILE", requires = "from_inventory")]
    pub write_scenario: Option<PathBuf>,

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
    let scenario = match &args.from_inventory {
        None => Scenario::load(&args.scenario).map_err(|e| CliError::error(e.to_string()))?,
        Some(path) => {
            let inv = super::source::read_inventory(path, "--from-inventory")?;
            let distro = super::source::infer_distro(&inv).unwrap_or("generic");
            let timings = sim::twin::TwinTimings {
                node_restart_seconds: args.node_restart.map(|d| d.as_secs_f64()),
                pod_start_seconds: None,
                pod_stop_seconds: 5.0,
            };
            let twin = sim::twin::from_inventory(&inv, distro, timings)
                .map_err(|e| CliError::error(format!("--from-inventory {}: {e}", path.display())))?;
            for note in &twin.notes {
                super::logging::warn(&format!("twin: {note}"));
            }
            if let Some(out) = &args.write_scenario {
                let text = super::render::yaml(&twin.scenario)?;
                super::plan::write_atomically(out, &text)
                    .map_err(|e| CliError::error(format!("cannot write the scenario to {}: {e}", out.display())))?;
            }
            twin.scenario
        }
    };
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
        // Serves until Ctrl-C, SIGTERM (systemd, a CI timeout, `kill`) or SIGHUP, kubeconfig
        // removed; or until the controllers panic: then the simulator has stopped serving and
        // the command fails with the reason.
        {
            use tokio::signal::unix::{SignalKind, signal};
            let (mut term, mut hup) = (signal(SignalKind::terminate()).ok(), signal(SignalKind::hangup()).ok());
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                Some(_) = async { match term.as_mut() { Some(t) => t.recv().await, None => std::future::pending().await } } => {}
                Some(_) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {}
                _ = running.failed() => {}
            }
        }
        let stopped = running.shutdown().await;
        let _ = std::fs::remove_file(&path);
        stopped.map_err(|e| CliError::error(e.to_string()))
    })?;
    Ok(Exit::Success)
}

/// `IP:PORT`, or `localhost:PORT` as 127.0.0.1 (never resolved: the name could point anywhere).
fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    if let Some(port) = text.strip_prefix("localhost:") {
        let port: u16 = port.parse().map_err(|_| format!("'{port}' is not a port (0 to 65535)"))?;
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    text.parse().map_err(|_| format!("'{text}' is not IP:PORT (for example 127.0.0.1:8443 or localhost:0)"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn localhost_is_loopback_and_other_names_are_refused() {
        assert_eq!(super::parse_listen("localhost:0").unwrap().to_string(), "127.0.0.1:0");
        assert_eq!(super::parse_listen("[::1]:8443").unwrap().to_string(), "[::1]:8443");
        assert!(super::parse_listen("example.com:80").unwrap_err().contains("not IP:PORT"));
        assert!(super::parse_listen("localhost:99999").unwrap_err().contains("not a port"));
    }
}
