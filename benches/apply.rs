//! Benchmark: rolling every worker of the demo cluster, `k8s-upgrade apply --max-unavailable 1`
//! against a loop of `kubectl drain` + upgrade annotation + `kubectl wait` + `kubectl uncordon`
//! on the same scenario and time scale.
//!
//! The scenario is `demo` with both worker pools on kubelet 1.23.17 under a 1.24.17 control
//! plane, so `apply --to 1.24.17` is exactly one roll of the six workers. Each side gets a fresh
//! simulator (3 runs each, medians). Reported: wall time, API requests (from `/sim/stats`),
//! and orchestration overhead per node: wall time minus the simulated delays.
//!
//! The simulated delays on a run's critical path (kubelet restarts, terminations, pod starts,
//! and the waits a budget imposes while replacements start) scale with the time scale; the
//! orchestration does not. So apply also runs at half the scale, and its overhead is the wall
//! time extrapolated to scale 0: `w(s) = overhead + s * T`, two scales give both. The kubectl
//! loop's own waits (1 s polls, 5 s retries after a 429) do not shrink with the scale, which
//! makes that extrapolation meaningless for it; its overhead is its wall time minus the same
//! simulated delays `T` (the cluster does the same work under both).
//!
//! apply runs with its default gates (2 consecutive passes) one simulated second apart
//! (`--gate-interval` = 1 s × the time scale, as `apply --simulate` paces them itself), so the
//! wait between the passes counts as simulated time; the kubectl loop has no gates at all.
//!
//! Run with `cargo bench --bench apply`.
//!
//! `cargo bench --bench apply -- --pools` rolls the 30 workers of the built-in `pools` scenario
//! at time scale 1 with apply's default gates, in parallel (`--max-unavailable 30%`) and one at a
//! time, against the serial kubectl loop (see `pools_mode`).
//!
//! `cargo bench --bench apply -- --real` runs the same comparison on the real control plane of
//! `e2e/control-plane.sh` (built first): the control plane at the second release of
//! `e2e/versions`, six workers one minor behind, the workloads of `tests/real/fixtures`, each
//! kubelet restart 5 s (`upgrade-node`, the same script for both sides). apply runs at its
//! defaults (gates every 2 s, 2 passes); the peer is that release's own `kubectl drain` +
//! `upgrade-node` + `kubectl wait` + `kubectl uncordon`. API requests are counted twice: the
//! admin identity's requests in the apiserver's audit log (apply's or kubectl's alone), and the
//! growth of the apiserver's own `apiserver_request_total` (every client, kwok and the
//! controllers included).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SCALE: f64 = 0.1;
const HALF: f64 = 0.05;
const WORKERS: [&str; 6] = ["pool-a-1", "pool-a-2", "pool-a-3", "pool-b-1", "pool-b-2", "pool-b-3"];
const TARGET: &str = "1.24.17";

/// Fails the benchmark with the command's output when it did not succeed.
fn assert_succeeded(what: &str, o: &std::process::Output) {
    assert!(
        o.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[path = "support/https.rs"]
mod https;

struct Sim {
    child: Child,
    api: https::Https,
    kubeconfig: PathBuf,
}

fn start(bin: &str, dir: &Path, scenario: &Path, scale: f64) -> Sim {
    let kubeconfig = dir.join("kubeconfig");
    let mut child = Command::new(bin)
        .args(["simulate", "--scenario"])
        .arg(scenario)
        .args(["--time-scale", &scale.to_string(), "--kubeconfig-out"])
        .arg(&kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the simulator");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let api = https::Https::from_kubeconfig(&kubeconfig);
    std::thread::sleep(Duration::from_secs(2));
    Sim { child, api, kubeconfig }
}

fn stats(api: &https::Https) -> serde_json::Value {
    serde_json::from_slice(&api.get("/sim/stats")).unwrap()
}

fn requests(api: &https::Https) -> u64 {
    stats(api)["totalRequests"].as_u64().unwrap()
}

fn kubectl(home: &Path, kubeconfig: &Path, args: &[&str]) {
    let o =
        Command::new("kubectl").args(args).env("HOME", home).env("KUBECONFIG", kubeconfig).output().expect("kubectl");
    assert!(o.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&o.stderr));
}

/// One `apply` roll on a fresh simulator: (wall seconds, API requests).
fn run_apply(bin: &str, dir: &Path, scenario: &Path, scale: f64) -> (f64, f64) {
    let interval = format!("{}ms", (scale * 1000.0).round());
    run_apply_with(bin, dir, scenario, scale, TARGET, &["--max-unavailable", "1", "--gate-interval", &interval])
}

/// An `apply --to target` on a fresh simulator with `extra` flags: (wall seconds, API requests).
fn run_apply_with(bin: &str, dir: &Path, scenario: &Path, scale: f64, target: &str, extra: &[&str]) -> (f64, f64) {
    std::fs::create_dir_all(dir.join("home")).unwrap();
    let sim = start(bin, dir, scenario, scale);
    let before = requests(&sim.api);
    let t = Instant::now();
    let o = Command::new(bin)
        .args(["apply", "--kubeconfig"])
        .arg(&sim.kubeconfig)
        .args(["--to", target, "--yes", "--upgrader", "sim", "--delete-emptydir-data", "--force"])
        .args(extra)
        .arg("--journal")
        .arg(dir.join("journal.json"))
        .env("HOME", dir.join("home"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let took = t.elapsed().as_secs_f64();
    assert_succeeded("apply", &o);
    let s = stats(&sim.api);
    assert_eq!(s["pdbViolations"], 0);
    let sent = (requests(&sim.api) - before) as f64;
    let mut c = sim.child;
    let _ = c.kill();
    let _ = c.wait();
    (took, sent)
}

/// The same roll as a loop of kubectl commands: (wall seconds, API requests).
fn run_kubectl(bin: &str, dir: &Path, scenario: &Path, scale: f64) -> (f64, f64) {
    let workers: Vec<String> = WORKERS.iter().map(|w| w.to_string()).collect();
    run_kubectl_with(bin, dir, scenario, scale, TARGET, &workers)
}

/// A serial loop of kubectl commands over `workers`: (wall seconds, API requests).
fn run_kubectl_with(
    bin: &str,
    dir: &Path,
    scenario: &Path,
    scale: f64,
    target: &str,
    workers: &[String],
) -> (f64, f64) {
    std::fs::create_dir_all(dir.join("home")).unwrap();
    let sim = start(bin, dir, scenario, scale);
    let home = dir.join("home");
    kubectl(&home, &sim.kubeconfig, &["get", "nodes", "-o", "name"]); // warm the discovery cache
    let before = requests(&sim.api);
    let t = Instant::now();
    for node in workers {
        let node = node.as_str();
        kubectl(
            &home,
            &sim.kubeconfig,
            &["drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--force", "--timeout=300s"],
        );
        kubectl(
            &home,
            &sim.kubeconfig,
            &["annotate", "node", node, &format!("sim.k8s-upgrade.dev/upgrade-to={target}"), "--overwrite"],
        );
        kubectl(
            &home,
            &sim.kubeconfig,
            &[
                "wait",
                &format!("node/{node}"),
                &format!("--for=jsonpath={{.status.nodeInfo.kubeletVersion}}=v{target}"),
                "--timeout=300s",
            ],
        );
        kubectl(&home, &sim.kubeconfig, &["wait", &format!("node/{node}"), "--for=condition=Ready", "--timeout=300s"]);
        kubectl(&home, &sim.kubeconfig, &["uncordon", node]);
    }
    let took = t.elapsed().as_secs_f64();
    let sent = (requests(&sim.api) - before) as f64;
    let mut c = sim.child;
    let _ = c.kill();
    let _ = c.wait();
    (took, sent)
}

/// Runs per side: 3 (medians), or `K8S_UPGRADE_BENCH_RUNS` for a quick look.
fn runs() -> usize {
    std::env::var("K8S_UPGRADE_BENCH_RUNS").ok().and_then(|r| r.parse().ok()).filter(|r| *r >= 1).unwrap_or(3)
}

/// Medians over [`runs`] runs: (wall seconds, API requests).
fn measure(base: &Path, name: &str, scale: f64, run: impl Fn(&Path, f64) -> (f64, f64)) -> (f64, f64) {
    let (mut walls, mut sent) = (Vec::new(), Vec::new());
    for i in 0..runs() {
        let (w, r) = run(&base.join(format!("{name}-{scale}-{i}")), scale);
        eprintln!("  {name} at time scale {scale}, run {}: {w:.1} s, {r:.0} API requests", i + 1);
        walls.push(w);
        sent.push(r);
    }
    (median(walls), median(sent))
}

/// A real control plane for one run of the real-cluster mode.
struct Real {
    dir: PathBuf,
    script: PathBuf,
    kubectl: PathBuf,
}

impl Real {
    fn up(base: &Path, name: &str, versions: &[String]) -> Real {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/control-plane.sh");
        let dir = base.join(name);
        let o = Command::new(&script)
            .args(["up", &versions[1], dir.to_str().unwrap()])
            .env("K8S_UPGRADE_E2E_NODES", "6")
            .env("K8S_UPGRADE_E2E_KUBELET_VERSION", &versions[0])
            .env("K8S_UPGRADE_E2E_AUDIT", "1")
            .output()
            .unwrap();
        assert!(o.status.success(), "control-plane.sh up: {}", String::from_utf8_lossy(&o.stderr));
        let status = Command::new(&script).args(["status", &versions[1]]).output().unwrap();
        let kubectl = PathBuf::from(String::from_utf8_lossy(&status.stdout).trim()).join("kubectl");
        let real = Real { dir, script, kubectl };
        real.kubectl(&["apply", "-f", concat!(env!("CARGO_MANIFEST_DIR"), "/tests/real/fixtures/workloads.yaml")]);
        let deadline = Instant::now() + Duration::from_secs(120);
        while !real.settled() {
            assert!(Instant::now() < deadline, "the workloads did not become ready");
            std::thread::sleep(Duration::from_millis(250));
        }
        real
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    fn kubectl(&self, args: &[&str]) -> String {
        let o = Command::new(&self.kubectl)
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .args(args)
            .env("HOME", &self.dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn settled(&self) -> bool {
        self.kubectl(&[
            "get",
            "deployments,statefulsets",
            "-A",
            "-o",
            "jsonpath={range .items[*]}{.spec.replicas}={.status.readyReplicas}{\"\\n\"}{end}",
        ])
        .lines()
        .all(|l| l.split_once('=').is_some_and(|(a, b)| a == b))
    }

    /// The admin's requests so far (audit log lines) and every client's (`apiserver_request_total`).
    fn requests(&self) -> (u64, u64) {
        let audit = std::fs::read_to_string(self.dir.join("logs/audit.log")).map_or(0, |t| t.lines().count() as u64);
        let o = Command::new(&self.kubectl)
            .arg("--kubeconfig")
            .arg(self.dir.join("super-admin.kubeconfig"))
            .args(["get", "--raw", "/metrics"])
            .output()
            .unwrap();
        let total = String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| l.starts_with("apiserver_request_total{"))
            .filter_map(|l| l.rsplit(' ').next().and_then(|n| n.parse::<f64>().ok()))
            .sum::<f64>() as u64;
        (audit, total)
    }

    fn upgrade_node(&self, node: &str, version: &str) {
        let o = Command::new(&self.script)
            .args(["upgrade-node", self.dir.to_str().unwrap(), node, "worker", version])
            .output()
            .unwrap();
        assert!(o.status.success(), "upgrade-node {node}: {}", String::from_utf8_lossy(&o.stderr));
    }
}

impl Drop for Real {
    fn drop(&mut self) {
        let _ = Command::new(&self.script).args(["down", self.dir.to_str().unwrap()]).output();
    }
}

const REAL_WORKERS: [&str; 6] = ["worker-1", "worker-2", "worker-3", "worker-4", "worker-5", "worker-6"];

/// One roll of the six workers by `apply` on a fresh real control plane: (wall s, admin requests,
/// all requests).
fn real_apply(bin: &str, base: &Path, run: usize, versions: &[String]) -> (f64, f64, f64) {
    let real = Real::up(base, &format!("apply-{run}"), versions);
    let before = real.requests();
    let t = Instant::now();
    let o = Command::new(bin)
        .arg("apply")
        .arg("--kubeconfig")
        .arg(real.kubeconfig())
        .args(["--to", &versions[1], "--yes", "--upgrader", "command", "--upgrade-command"])
        .arg(format!("{} upgrade-node {} {{node}} {{role}} {{version}}", real.script.display(), real.dir.display()))
        .arg("--journal")
        .arg(real.dir.join("journal.json"))
        .env("HOME", &real.dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let took = t.elapsed().as_secs_f64();
    assert_succeeded("apply", &o);
    let after = real.requests();
    (took, (after.0 - before.0) as f64, (after.1 - before.1) as f64)
}

/// The same roll as the release's own kubectl commands: (wall s, admin requests, all requests).
fn real_kubectl(base: &Path, run: usize, versions: &[String]) -> (f64, f64, f64) {
    let real = Real::up(base, &format!("kubectl-{run}"), versions);
    real.kubectl(&["get", "nodes", "-o", "name"]); // warm the discovery cache
    let before = real.requests();
    let t = Instant::now();
    for node in REAL_WORKERS {
        real.kubectl(&["drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=300s"]);
        real.upgrade_node(node, &versions[1]);
        real.kubectl(&[
            "wait",
            &format!("node/{node}"),
            &format!("--for=jsonpath={{.status.nodeInfo.kubeletVersion}}=v{}", versions[1]),
            "--timeout=300s",
        ]);
        real.kubectl(&["wait", &format!("node/{node}"), "--for=condition=Ready", "--timeout=300s"]);
        real.kubectl(&["uncordon", node]);
    }
    let took = t.elapsed().as_secs_f64();
    let after = real.requests();
    (took, (after.0 - before.0) as f64, (after.1 - before.1) as f64)
}

fn real_mode(bin: &str, base: &Path) {
    let versions: Vec<String> = include_str!("../e2e/versions")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/control-plane.sh");
    for v in &versions[..2] {
        let o = Command::new(&script).args(["status", v]).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let medians = |runs: Vec<(f64, f64, f64)>| {
        (
            median(runs.iter().map(|r| r.0).collect()),
            median(runs.iter().map(|r| r.1).collect()),
            median(runs.iter().map(|r| r.2).collect()),
        )
    };
    let (aw, ar, at) = medians((0..3).map(|i| real_apply(bin, base, i, &versions)).collect());
    let (kw, kr, kt) = medians((0..3).map(|i| real_kubectl(base, i, &versions)).collect());
    let floor = 6.0 * 5.0;
    println!(
        "real control plane {} (6 workers from kubelet {}, kubelet restart 5 s each, floor {floor:.0} s):",
        versions[1], versions[0]
    );
    println!(
        "  apply (defaults, --max-unavailable 1): median {aw:.1} s, {ar:.0} requests by apply, {at:.0} by every client"
    );
    println!(
        "  kubectl {} loop (drain + upgrade + wait + wait + uncordon): median {kw:.1} s, {kr:.0} requests by kubectl, {kt:.0} by every client",
        versions[1]
    );
    println!("  ratios apply/kubectl: wall {:.2}, own requests {:.2}, all requests {:.2}", aw / kw, ar / kr, at / kt);
}

/// The 30 workers of the built-in `pools` scenario, rolled from kubelet 1.30.14 to its control
/// plane's 1.31.14 at time scale 1 (its own delays: 3 s terminations, 10 s kubelet restarts, 2 s
/// pod starts). apply runs with its default gates (2 passes, 2 s apart, as on any real cluster)
/// three ways: `--max-unavailable 30%` (batches chosen so no budget is exceeded),
/// `--max-unavailable 1` (one node of each pool at a time: three at once), and one node of the
/// whole cluster at a time (`--max-parallel 1`), the kubectl loop's own pace. The peer is the
/// serial kubectl loop. The physical floor of a node is its pods' termination and its kubelet's
/// restart, 13 s, one after the other; a roll of the whole cluster at once would take that once.
fn pools_mode(bin: &str, base: &Path) {
    const TARGET_131: &str = "1.31.14";
    const NODE_FLOOR: f64 = 13.0;
    let workers: Vec<String> =
        ["general", "compute", "memory"].iter().flat_map(|p| (1..=10).map(move |i| format!("{p}-{i}"))).collect();
    let scenario = Path::new("pools");
    let configs: [(&str, &[&str]); 3] = [
        ("--max-unavailable 30%", &["--max-unavailable", "30%"]),
        ("--max-unavailable 1 (per pool)", &["--max-unavailable", "1"]),
        ("--max-parallel 1 (serial)", &["--max-unavailable", "1", "--max-parallel", "1"]),
    ];
    let mut results = Vec::new();
    for (i, (label, extra)) in configs.iter().enumerate() {
        let (w, r) = measure(base, &format!("pools-apply-{i}"), 1.0, |dir, scale| {
            run_apply_with(bin, dir, scenario, scale, TARGET_131, extra)
        });
        results.push((label, w, r));
    }
    let (kw, kr) = measure(base, "pools-kubectl", 1.0, |dir, scale| {
        run_kubectl_with(bin, dir, scenario, scale, TARGET_131, &workers)
    });
    let serial_floor = workers.len() as f64 * NODE_FLOOR;
    println!("pools (30 workers in three pools of ten, time scale 1, default gates, medians of {}):", runs());
    println!(
        "  kubectl drain loop (serial): {kw:.1} s, {kr:.0} API requests; floor {serial_floor:.0} s one node at a time"
    );
    for (label, w, r) in results {
        println!(
            "  apply {label}: {w:.1} s, {r:.0} API requests; ratios to the kubectl loop: wall {:.2}, requests {:.2}",
            w / kw,
            r / kr
        );
    }
}

fn main() {
    let bin = env!("CARGO_BIN_EXE_k8s-upgrade");
    if std::env::args().any(|a| a == "--pools") {
        let base = std::env::temp_dir().join(format!("k8s-upgrade-bench-pools-{}", std::process::id()));
        std::fs::create_dir_all(&base).unwrap();
        pools_mode(bin, &base);
        let _ = std::fs::remove_dir_all(&base);
        return;
    }
    if std::env::args().any(|a| a == "--real") {
        let base = std::env::temp_dir().join(format!("k8s-upgrade-bench-real-{}", std::process::id()));
        std::fs::create_dir_all(&base).unwrap();
        real_mode(bin, &base);
        let _ = std::fs::remove_dir_all(&base);
        return;
    }
    let base = std::env::temp_dir().join(format!("k8s-upgrade-bench-apply-{}", std::process::id()));
    std::fs::create_dir_all(&base).unwrap();
    let demo = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/demo.yaml")).unwrap();
    let scenario = base.join("workers.yaml");
    std::fs::write(
        &scenario,
        demo.replace(
            "  - name: pool-a\n    count: 3\n    roles: [worker]\n",
            "  - name: pool-a\n    count: 3\n    roles: [worker]\n    version: \"1.23.17\"\n",
        ),
    )
    .unwrap();
    let have_kubectl =
        Command::new("kubectl").arg("version").arg("--client").output().is_ok_and(|o| o.status.success());

    let n = WORKERS.len() as f64;
    let (w, r) = measure(&base, "apply", SCALE, |dir, scale| run_apply(bin, dir, &scenario, scale));
    let (wh, _) = measure(&base, "apply", HALF, |dir, scale| run_apply(bin, dir, &scenario, scale));
    // w(s) = overhead + s * T: the simulated delays on the roll's critical path at SCALE.
    let simulated = SCALE * (w - wh) / (SCALE - HALF);
    println!(
        "apply (6 workers, --max-unavailable 1, time scale {SCALE}): median {w:.2} s, {r:.0} API requests; simulated delays on the critical path {simulated:.2} s (from the run at scale {HALF}: {wh:.2} s), overhead {:.0} ms/node",
        (w - simulated) / n * 1000.0
    );
    if have_kubectl {
        let (kw, kr) = measure(&base, "kubectl", SCALE, |dir, scale| run_kubectl(bin, dir, &scenario, scale));
        // kubectl's own waits (1 s polls, 5 s retries) do not shrink with the scale, so its
        // overhead is taken against the same simulated delays as apply's.
        println!(
            "kubectl loop (drain + annotate + wait + wait + uncordon): median {kw:.2} s, {kr:.0} API requests; overhead {:.0} ms/node",
            (kw - simulated) / n * 1000.0
        );
        println!("ratios apply/kubectl: wall {:.2}, requests {:.2}", w / kw, r / kr);
    } else {
        println!("kubectl not found: no peer comparison");
    }
    let _ = std::fs::remove_dir_all(&base);
}
