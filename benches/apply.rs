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

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SCALE: f64 = 0.1;
const HALF: f64 = 0.05;
const WORKERS: [&str; 6] = ["pool-a-1", "pool-a-2", "pool-a-3", "pool-b-1", "pool-b-2", "pool-b-3"];
const TARGET: &str = "1.24.17";

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
    std::fs::create_dir_all(dir.join("home")).unwrap();
    let sim = start(bin, dir, scenario, scale);
    let before = requests(&sim.api);
    let t = Instant::now();
    let o = Command::new(bin)
        .args(["apply", "--kubeconfig"])
        .arg(&sim.kubeconfig)
        .args([
            "--to",
            TARGET,
            "--yes",
            "--upgrader",
            "sim",
            "--max-unavailable",
            "1",
            "--delete-emptydir-data",
            "--force",
            "--gate-interval",
        ])
        .arg(format!("{}ms", (scale * 1000.0).round()))
        .arg("--journal")
        .arg(dir.join("journal.json"))
        .env("HOME", dir.join("home"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let took = t.elapsed().as_secs_f64();
    assert!(
        o.status.success(),
        "apply failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
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
    std::fs::create_dir_all(dir.join("home")).unwrap();
    let sim = start(bin, dir, scenario, scale);
    let home = dir.join("home");
    kubectl(&home, &sim.kubeconfig, &["get", "nodes", "-o", "name"]); // warm the discovery cache
    let before = requests(&sim.api);
    let t = Instant::now();
    for node in WORKERS {
        kubectl(
            &home,
            &sim.kubeconfig,
            &["drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--force", "--timeout=300s"],
        );
        kubectl(
            &home,
            &sim.kubeconfig,
            &["annotate", "node", node, &format!("sim.k8s-upgrade.dev/upgrade-to={TARGET}"), "--overwrite"],
        );
        kubectl(
            &home,
            &sim.kubeconfig,
            &[
                "wait",
                &format!("node/{node}"),
                &format!("--for=jsonpath={{.status.nodeInfo.kubeletVersion}}=v{TARGET}"),
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

/// Medians over 3 runs: (wall seconds, API requests).
fn measure(base: &Path, name: &str, scale: f64, run: impl Fn(&Path, f64) -> (f64, f64)) -> (f64, f64) {
    let (mut walls, mut sent) = (Vec::new(), Vec::new());
    for i in 0..3 {
        let (w, r) = run(&base.join(format!("{name}-{scale}-{i}")), scale);
        walls.push(w);
        sent.push(r);
    }
    (median(walls), median(sent))
}

fn main() {
    let bin = env!("CARGO_BIN_EXE_k8s-upgrade");
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
