//! Benchmark: `k8s-upgrade rehearse` against the run it forecasts.
//!
//! Default: the built-in `pools` scenario (30 workers in three pools, budgets on every workload)
//! served by `k8s-upgrade simulate` at time scale 1 (its own delays: pods start in 2 s, stop in
//! 3 s, a kubelet restart takes 10 s). `rehearse --to 1.31` runs 3 times (told those delays);
//! then `apply --to 1.31 --upgrader sim` runs once on the same cluster, at its defaults. Reported:
//! the rehearsal's wall time (median), its predicted run time, the measured run time, their
//! ratio, and how many times faster than the run the rehearsal is.
//!
//! `cargo bench --bench rehearse -- --large` rehearses the `large` scenario (5,000 nodes, 150,000
//! pods, 1,500 budgets) to the next minor with `--max-unavailable 10%`, stopped after
//! `K8S_UPGRADE_BENCH_LIMIT` seconds (default 900), and reports its wall time and peak memory.
//!
//! Run with `cargo bench --bench rehearse` (a release build of the binary is used).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> String {
    env!("CARGO_BIN_EXE_k8s-upgrade").to_string()
}

struct Sim(Child);

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dir: &Path, scenario: &str, scale: f64) -> (Sim, PathBuf) {
    let kubeconfig = dir.join("kubeconfig");
    let mut child = Command::new(bin())
        .args(["simulate", "--scenario", scenario, "--time-scale", &scale.to_string(), "--kubeconfig-out"])
        .arg(&kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the simulator");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).expect("simulator output");
    assert!(line.contains("listening"), "{line}");
    (Sim(child), kubeconfig)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn rehearse(dir: &Path, kubeconfig: &Path, args: &[&str]) -> (f64, serde_json::Value) {
    let started = Instant::now();
    let o = Command::new(bin())
        .env("HOME", dir)
        .arg("rehearse")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .args(["-o", "json"])
        .stdin(Stdio::null())
        .output()
        .expect("run rehearse");
    let wall = started.elapsed().as_secs_f64();
    let f: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("rehearse printed no forecast ({e}): {}", String::from_utf8_lossy(&o.stderr)));
    (wall, f)
}

fn pools(base: &Path) {
    let dir = base.join("pools");
    std::fs::create_dir_all(&dir).unwrap();
    let (_sim, kubeconfig) = start(&dir, "pools", 1.0);
    std::thread::sleep(Duration::from_secs(3));
    let told = ["--to", "1.31", "--node-restart", "10s", "--pod-start", "2s", "--pod-stop", "3s"];
    let mut walls = Vec::new();
    let mut predicted = 0.0;
    for _ in 0..3 {
        let (wall, f) = rehearse(&dir, &kubeconfig, &told);
        predicted = f["predictedSeconds"].as_f64().unwrap();
        walls.push(wall);
    }
    let started = Instant::now();
    let o = Command::new(bin())
        .env("HOME", &dir)
        .args(["apply", "--kubeconfig"])
        .arg(&kubeconfig)
        .args(["--to", "1.31", "--yes", "--upgrader", "sim", "--journal"])
        .arg(dir.join("journal.json"))
        .stdin(Stdio::null())
        .output()
        .expect("run apply");
    let measured = started.elapsed().as_secs_f64();
    assert!(o.status.success(), "apply failed: {}", String::from_utf8_lossy(&o.stderr));
    let wall = median(walls);
    println!(
        "pools (30 workers, time scale 1): rehearsal {wall:.2} s (median of 3), predicted {predicted:.1} s, measured apply {measured:.1} s, predicted/measured {:.3}, rehearsal {:.0}x faster than the run",
        predicted / measured,
        measured / wall
    );
}

fn large(base: &Path) {
    let dir = base.join("large");
    std::fs::create_dir_all(&dir).unwrap();
    let (_sim, kubeconfig) = start(&dir, "large", 1.0);
    let limit: u64 = std::env::var("K8S_UPGRADE_BENCH_LIMIT").ok().and_then(|v| v.parse().ok()).unwrap_or(900);
    let started = Instant::now();
    let mut child = Command::new("/usr/bin/time")
        .args(["-f", "peak RSS %M KB"])
        .arg(bin())
        .env("HOME", &dir)
        .arg("rehearse")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["--to", "1.32", "--max-unavailable", "10%", "-o", "json", "--save"])
        .arg(dir.join("forecast.json"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run rehearse");
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            let f: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(dir.join("forecast.json")).unwrap_or_default())
                    .unwrap_or_default();
            println!(
                "large (5,000 nodes, 150,000 pods): rehearsal {:.1} s wall, exit {:?}, predicted {:.0} s, {} nodes upgraded; {}",
                started.elapsed().as_secs_f64(),
                status.code(),
                f["predictedSeconds"].as_f64().unwrap_or_default(),
                f["nodes"]["upgraded"],
                err.lines().last().unwrap_or_default()
            );
            return;
        }
        if started.elapsed() > Duration::from_secs(limit) {
            let _ = child.kill();
            println!("large (5,000 nodes, 150,000 pods): rehearsal stopped after {limit} s without finishing");
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn main() {
    let base = std::env::temp_dir().join(format!("k8s-upgrade-bench-rehearse-{}", std::process::id()));
    std::fs::create_dir_all(&base).unwrap();
    if std::env::args().any(|a| a == "--large") {
        large(&base);
    } else {
        pools(&base);
    }
    let _ = std::fs::remove_dir_all(&base);
}
