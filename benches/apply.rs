//! Benchmark: rolling every worker of the demo cluster, `k8s-upgrade apply --max-unavailable 1`
//! against a loop of `kubectl drain` + upgrade annotation + `kubectl wait` + `kubectl uncordon`
//! on the same scenario and time scale.
//!
//! The scenario is `demo` with both worker pools on kubelet 1.23.17 under a 1.24.17 control
//! plane, so `apply --to 1.24.17` is exactly one roll of the six workers. Each side gets a fresh
//! simulator (3 runs each, medians). Reported: wall time, API requests (from `/sim/stats`),
//! and orchestration overhead per node: wall time minus the simulated delays a node cannot
//! avoid (kubelet restart + the longest termination grace + pod start, at the time scale).
//!
//! apply runs with its default gates (2 consecutive passes) checked every 100 ms, the pace of a
//! cluster at this time scale; the kubectl loop has no gates at all.
//!
//! Run with `cargo bench --bench apply`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SCALE: f64 = 0.1;
const WORKERS: [&str; 6] = ["pool-a-1", "pool-a-2", "pool-a-3", "pool-b-1", "pool-b-2", "pool-b-3"];
const TARGET: &str = "1.24.17";

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

struct Sim {
    child: Child,
    addr: String,
    kubeconfig: PathBuf,
}

fn start(bin: &str, dir: &Path, scenario: &Path) -> Sim {
    let kubeconfig = dir.join("kubeconfig");
    let mut child = Command::new(bin)
        .args(["simulate", "--scenario"])
        .arg(scenario)
        .args(["--time-scale", &SCALE.to_string(), "--kubeconfig-out"])
        .arg(&kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the simulator");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let text = std::fs::read_to_string(&kubeconfig).unwrap();
    let addr =
        text.lines().find_map(|l| l.trim().strip_prefix("server: http://")).unwrap().trim_end_matches('/').to_string();
    std::thread::sleep(Duration::from_secs(2));
    Sim { child, addr, kubeconfig }
}

fn stats(addr: &str) -> serde_json::Value {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "GET /sim/stats HTTP/1.0\r\nHost: sim\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    serde_json::from_str(raw.split_once("\r\n\r\n").unwrap().1).unwrap()
}

fn requests(addr: &str) -> u64 {
    stats(addr)["totalRequests"].as_u64().unwrap()
}

fn kubectl(home: &Path, kubeconfig: &Path, args: &[&str]) {
    let o =
        Command::new("kubectl").args(args).env("HOME", home).env("KUBECONFIG", kubeconfig).output().expect("kubectl");
    assert!(o.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&o.stderr));
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
    // Per node: kubelet restart 8 s, longest grace 2 s, replacement start 2 s (demo timings).
    let floor_per_node = (8.0 + 2.0 + 2.0) * SCALE;

    let have_kubectl =
        Command::new("kubectl").arg("version").arg("--client").output().is_ok_and(|o| o.status.success());
    let mut ours = (Vec::new(), Vec::new());
    let mut theirs = (Vec::new(), Vec::new());
    for run in 0..3 {
        let dir = base.join(format!("ours-{run}"));
        std::fs::create_dir_all(dir.join("home")).unwrap();
        let sim = start(bin, &dir, &scenario);
        let before = requests(&sim.addr);
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
                "100ms",
            ])
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
        let s = stats(&sim.addr);
        assert_eq!(s["pdbViolations"], 0);
        ours.0.push(took);
        ours.1.push((requests(&sim.addr) - before) as f64);
        let mut c = sim.child;
        let _ = c.kill();
        let _ = c.wait();

        if !have_kubectl {
            continue;
        }
        let dir = base.join(format!("kubectl-{run}"));
        std::fs::create_dir_all(dir.join("home")).unwrap();
        let sim = start(bin, &dir, &scenario);
        let home = dir.join("home");
        kubectl(&home, &sim.kubeconfig, &["get", "nodes", "-o", "name"]); // warm the discovery cache
        let before = requests(&sim.addr);
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
            kubectl(
                &home,
                &sim.kubeconfig,
                &["wait", &format!("node/{node}"), "--for=condition=Ready", "--timeout=300s"],
            );
            kubectl(&home, &sim.kubeconfig, &["uncordon", node]);
        }
        theirs.0.push(t.elapsed().as_secs_f64());
        theirs.1.push((requests(&sim.addr) - before) as f64);
        let mut c = sim.child;
        let _ = c.kill();
        let _ = c.wait();
    }
    let n = WORKERS.len() as f64;
    let (w, r) = (median(ours.0.clone()), median(ours.1.clone()));
    println!(
        "apply (6 workers, --max-unavailable 1, time scale {SCALE}): median {w:.2} s over 3 runs, {r:.0} API requests, overhead {:.0} ms/node (floor {:.2} s/node)",
        (w / n - floor_per_node) * 1000.0,
        floor_per_node
    );
    if have_kubectl {
        let (kw, kr) = (median(theirs.0.clone()), median(theirs.1.clone()));
        println!(
            "kubectl loop (drain + annotate + wait + wait + uncordon): median {kw:.2} s over 3 runs, {kr:.0} API requests, overhead {:.0} ms/node",
            (kw / n - floor_per_node) * 1000.0
        );
        println!("ratios apply/kubectl: wall {:.2}, requests {:.2}", w / kw, r / kr);
    } else {
        println!("kubectl not found: no peer comparison");
    }
    let _ = std::fs::remove_dir_all(&base);
}
