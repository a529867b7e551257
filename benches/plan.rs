//! Benchmark: `plan` at scale, side by side with kubectl, and the manifest scan's throughput.
//!
//! 1. Starts `k8s-upgrade simulate --scenario large` (5,000 nodes, 150,012 pods) and times
//!    `k8s-upgrade plan --kubeconfig … --to 1.33 -o json` (3 runs, median, peak RSS from
//!    `/usr/bin/time` when present) against `kubectl get pods -A -o json` on the same simulator
//!    (1 run: it takes minutes). Goals: plan no slower than 1.5× that listing, RSS < 500 MiB.
//! 2. Generates a ~100 MB tree of manifests and times an offline
//!    `plan --distro kubeadm --from 1.21.5 --to 1.33 --manifests DIR` (3 runs), and the scan alone
//!    in process (3 runs). Goal ≥ 100 MB/s. Two in five generated objects use a removed API, so
//!    the plan carries a finding for each: far more than a real tree, which makes the end-to-end
//!    figure a worst case.
//!
//! Run with `cargo bench --bench plan`.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Runs a command (through /usr/bin/time when available) and returns wall time and peak RSS KiB.
fn timed(cmd: &[&str], env: &[(&str, &Path)]) -> (Duration, Option<u64>, bool) {
    let have_time = Path::new("/usr/bin/time").exists();
    let mut c = if have_time {
        let mut c = Command::new("/usr/bin/time");
        c.arg("-f").arg("%M").args(cmd);
        c
    } else {
        let mut c = Command::new(cmd[0]);
        c.args(&cmd[1..]);
        c
    };
    for (k, v) in env {
        c.env(k, v);
    }
    let t = Instant::now();
    let out = c.stdout(Stdio::null()).stderr(Stdio::piped()).output().expect("run");
    let d = t.elapsed();
    let rss = have_time
        .then(|| String::from_utf8_lossy(&out.stderr).lines().last().and_then(|l| l.trim().parse().ok()))
        .flatten();
    (d, rss, out.status.code().is_some_and(|c| c == 0 || c == 3))
}

fn generate_manifests(dir: &Path, bytes: usize) -> usize {
    let kinds = [
        ("apps/v1", "Deployment"),
        ("policy/v1beta1", "PodDisruptionBudget"),
        ("batch/v1beta1", "CronJob"),
        ("networking.k8s.io/v1", "Ingress"),
        ("v1", "ConfigMap"),
    ];
    let mut written = 0;
    let mut file = 0;
    while written < bytes {
        let sub = dir.join(format!("team-{:03}", file % 200));
        std::fs::create_dir_all(&sub).unwrap();
        let mut text = String::new();
        for i in 0..40 {
            let (api, kind) = kinds[(file + i) % kinds.len()];
            text.push_str(&format!(
                "---\napiVersion: {api}\nkind: {kind}\nmetadata:\n  name: obj-{file}-{i}\n  namespace: team-{:03}\n  labels:\n    app: app-{file}\n    tier: backend\nspec:\n  replicas: 3\n  selector:\n    matchLabels:\n      app: app-{file}\n  template:\n    metadata:\n      labels:\n        app: app-{file}\n    spec:\n      containers:\n        - name: main\n          image: registry.example.com/team/app-{file}:1.{i}.0\n          resources:\n            requests: {{cpu: 100m, memory: 128Mi}}\n",
                file % 200
            ));
        }
        let path = sub.join(format!("app-{file}.yaml"));
        std::fs::File::create(&path).unwrap().write_all(text.as_bytes()).unwrap();
        written += text.len();
        file += 1;
    }
    written
}

fn main() {
    let bin = env!("CARGO_BIN_EXE_k8s-upgrade");
    let dir = std::env::temp_dir().join(format!("k8s-upgrade-bench-plan-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("home")).unwrap();

    // 2. Manifest scan throughput (first: it needs no simulator).
    let tree = dir.join("manifests");
    let bytes = generate_manifests(&tree, 100 * 1024 * 1024);
    let mut scans = Vec::new();
    for _ in 0..3 {
        let (d, _, ok) = timed(
            &[
                bin,
                "plan",
                "--distro",
                "kubeadm",
                "--from",
                "1.21.5",
                "--to",
                "1.33",
                "--manifests",
                tree.to_str().unwrap(),
                "-o",
                "json",
            ],
            &[],
        );
        assert!(ok, "offline plan failed");
        scans.push(d);
    }
    let m = median(scans);
    // The scan alone, in process: reading, splitting and identifying every document.
    let mut scan_only = Vec::new();
    for _ in 0..3 {
        let mut inv = k8s_upgrade::inventory::Inventory::default();
        let t = Instant::now();
        k8s_upgrade::inventory::manifests::scan(&tree, &Default::default(), &mut inv).expect("scan");
        scan_only.push(t.elapsed());
        assert!(!inv.objects.is_empty());
    }
    let s = median(scan_only);
    println!(
        "manifest scan alone: {:.0} MB in {:.3} s median over 3 runs = {:.0} MB/s",
        bytes as f64 / 1e6,
        s.as_secs_f64(),
        bytes as f64 / 1e6 / s.as_secs_f64()
    );
    println!(
        "manifest scan: {:.0} MB in {:.2} s median over 3 runs = {:.0} MB/s (plan --manifests, offline, 1.21 → 1.33)",
        bytes as f64 / 1e6,
        m.as_secs_f64(),
        bytes as f64 / 1e6 / m.as_secs_f64()
    );
    std::fs::remove_dir_all(&tree).unwrap();

    // 1. plan against the large scenario vs kubectl listing the same pods.
    let kubeconfig = dir.join("kubeconfig");
    let mut sim = Command::new(bin)
        .args(["simulate", "--scenario", "large", "--kubeconfig-out"])
        .arg(&kubeconfig)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the simulator");
    let mut line = String::new();
    BufReader::new(sim.stdout.take().unwrap()).read_line(&mut line).unwrap();
    std::thread::sleep(Duration::from_secs(8)); // let the controllers settle
    let mut plans = Vec::new();
    let mut peak = 0;
    for _ in 0..3 {
        let (d, rss, ok) =
            timed(&[bin, "plan", "--kubeconfig", kubeconfig.to_str().unwrap(), "--to", "1.33", "-o", "json"], &[]);
        assert!(ok, "plan failed");
        plans.push(d);
        peak = peak.max(rss.unwrap_or(0));
    }
    let plan = median(plans);
    println!(
        "plan on large (150,012 pods): median {:.2} s over 3 runs, peak RSS {} MiB",
        plan.as_secs_f64(),
        peak / 1024
    );
    let home = dir.join("home");
    let env = [("HOME", home.as_path()), ("KUBECONFIG", kubeconfig.as_path())];
    if timed(&["kubectl", "version", "--client"], &env).2 {
        timed(&["kubectl", "get", "nodes", "-o", "name"], &env);
        let (d, rss, ok) = timed(&["kubectl", "get", "pods", "-A", "-o", "json"], &env);
        assert!(ok, "kubectl failed");
        println!(
            "kubectl get pods -A -o json on the same simulator: {:.2} s (1 run), peak RSS {} MiB; plan/kubectl = {:.2}",
            d.as_secs_f64(),
            rss.unwrap_or(0) / 1024,
            plan.as_secs_f64() / d.as_secs_f64()
        );
    } else {
        println!("kubectl not found: no peer comparison");
    }
    let _ = sim.kill();
    let _ = sim.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
