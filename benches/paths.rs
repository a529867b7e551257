//! Benchmark: how fast `paths` answers.
//!
//! 1. In process: `find_path` for every (distro, from, to) pair the catalog allows, with
//!    kubelets at `from`; reports median, p99 and max per question.
//! 2. End to end: the release binary answering one long question (`generic 1.19 -> latest`),
//!    spawned repeatedly; reports the median wall time, which includes process start and
//!    catalog parsing. The goal is under 50 ms for any pair.
//!
//! Run with `cargo bench --bench paths`.

use std::process::Command;
use std::time::{Duration, Instant};

use k8s_upgrade::catalog::Catalog;
use k8s_upgrade::graph::{Facts, PathRequest, Target, find_path};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn main() {
    let today = "2026-11-26".parse().unwrap();
    let load_start = Instant::now();
    let catalog = Catalog::embedded().expect("catalog");
    let load = load_start.elapsed();

    let mut times = Vec::new();
    let mut answered = 0usize;
    for distro in catalog.distro_names() {
        let d = catalog.distro(distro).unwrap();
        let minors = catalog.offered_minors(d);
        for (i, from) in minors.iter().enumerate() {
            for to in &minors[i..] {
                let req = PathRequest {
                    distro: distro.to_string(),
                    from: from.with_patch(0),
                    to: Target::Version(to.to_version()),
                    via: vec![],
                    kubelets: vec![],
                    facts: Facts::default(),
                    today,
                };
                let t = Instant::now();
                let r = find_path(&catalog, &req);
                times.push(t.elapsed());
                answered += usize::from(r.is_ok());
            }
        }
    }
    times.sort();
    println!("catalog load (parse + validate): {:.2} ms", load.as_secs_f64() * 1e3);
    println!(
        "find_path over {} questions ({} answered with a path): median {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        times.len(),
        answered,
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.99).as_secs_f64() * 1e3,
        times.last().unwrap().as_secs_f64() * 1e3
    );

    let bin = env!("CARGO_BIN_EXE_k8s-upgrade");
    let mut walls = Vec::new();
    for _ in 0..30 {
        let t = Instant::now();
        let out = Command::new(bin)
            .args(["paths", "--distro", "generic", "--from", "1.19.0", "--to", "latest", "-o", "json"])
            .output()
            .expect("spawn k8s-upgrade");
        walls.push(t.elapsed());
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    walls.sort();
    println!(
        "end to end `k8s-upgrade paths --distro generic --from 1.19.0 --to latest -o json` ({} runs): median {:.2} ms, max {:.2} ms",
        walls.len(),
        percentile(&walls, 0.5).as_secs_f64() * 1e3,
        walls.last().unwrap().as_secs_f64() * 1e3
    );
}
