//! Benchmark: the simulator at scale (the `large` scenario: 5,000 nodes, 150,000 pods).
//!
//! Starts `k8s-upgrade simulate --scenario large` as its own process and reports medians of:
//! a full paginated LIST of every pod (`limit=500`, following `continue`), the same through
//! `kubectl get pods -A -o name` (kubectl pages by 500 too), and `kubectl get nodes`; plus the
//! simulator's start-up time and resident memory. Goals: pod LIST under 3 s, RSS under 1.5 GiB.
//!
//! Run with `cargo bench --bench sim`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "support/https.rs"]
mod https;

#[derive(serde::Deserialize)]
struct Page {
    kind: String,
    metadata: PageMeta,
    items: Vec<serde::de::IgnoredAny>,
}

#[derive(serde::Deserialize)]
struct PageMeta {
    #[serde(rename = "continue")]
    continue_token: Option<String>,
}

fn list_all_pods(api: &https::Https) -> usize {
    let mut total = 0;
    let mut cont = String::new();
    loop {
        let body = api.get(&format!("/api/v1/pods?limit=500&continue={cont}"));
        // Check the page is a well-formed PodList and count its items without building values.
        let page: Page = serde_json::from_slice(&body).expect("a PodList");
        assert_eq!(page.kind, "PodList");
        total += page.items.len();
        match page.metadata.continue_token {
            Some(c) => cont = c,
            None => return total,
        }
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let dir = std::env::temp_dir().join(format!("k8s-upgrade-bench-sim-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("home")).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_k8s-upgrade"))
        .args(["simulate", "--scenario", "large", "--kubeconfig-out"])
        .arg(&kubeconfig)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the simulator");
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    let startup = started.elapsed();
    let api = https::Https::from_kubeconfig(&kubeconfig);
    println!("large scenario up in {} ({})", ms(startup), first.trim());

    let mut lists = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let n = list_all_pods(&api);
        lists.push(t.elapsed());
        assert_eq!(n, 150_000 + 12, "every pod listed once");
    }
    println!("paginated LIST of all pods (limit=500): median {} over 5 runs", ms(median(lists)));

    let kubectl = |args: &[&str]| {
        let t = Instant::now();
        let o =
            Command::new("kubectl").args(args).env("HOME", dir.join("home")).env("KUBECONFIG", &kubeconfig).output();
        let d = t.elapsed();
        match o {
            Ok(o) if o.status.success() => Some((d, o.stdout.len())),
            _ => None,
        }
    };
    if kubectl(&["version", "--client"]).is_none() {
        println!("kubectl not found: skipping the kubectl comparisons");
    } else {
        kubectl(&["get", "nodes", "-o", "name"]); // warm the discovery cache
        let mut nodes = Vec::new();
        for _ in 0..5 {
            let (d, bytes) = kubectl(&["get", "nodes"]).expect("kubectl get nodes");
            assert!(bytes > 5_000 * 40);
            nodes.push(d);
        }
        println!("kubectl get nodes (5,000 nodes, server-side Table): median {} over 5 runs", ms(median(nodes)));
        let mut pods = Vec::new();
        for _ in 0..3 {
            pods.push(kubectl(&["get", "pods", "-A", "-o", "name"]).expect("kubectl get pods").0);
        }
        println!(
            "kubectl get pods -A -o name (150,012 pods, paginated by kubectl): median {} over 3 runs",
            ms(median(pods))
        );
    }
    println!("simulator RSS after the runs: {:.0} MiB", rss_kib(child.id()) as f64 / 1024.0);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
