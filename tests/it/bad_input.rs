//! The bad-input suite: each row an input an adversarial user (or a broken cluster) gives, the
//! exit code, a phrase the one-line message must hold, and ceilings on peak memory and time. Rows
//! name the defect they pin (`review-adversarial` numbering) where they came from one. Peak memory
//! is measured with GNU time (`/usr/bin/time`; CI installs it); without it the row still checks
//! the rest and says the memory was not measured.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Row {
    name: &'static str,
    args: Vec<String>,
    exit: i32,
    /// On stderr, in the one line that explains.
    phrase: &'static str,
    max_rss_mb: u64,
    max_time: Duration,
}

fn row(name: &'static str, args: &[&str], exit: i32, phrase: &'static str, max_rss_mb: u64, secs: u64) -> Row {
    Row {
        name,
        args: args.iter().map(|s| s.to_string()).collect(),
        exit,
        phrase,
        max_rss_mb,
        max_time: Duration::from_secs(secs),
    }
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("k8s-upgrade-it-bad-input-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A copy of the catalog whose `kubernetes.yaml` is an endless device.
fn endless_catalog(dir: &Path) -> PathBuf {
    let cat = dir.join("catalog");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("upgrade-paths");
    let mut stack = vec![(src.clone(), cat.clone())];
    while let Some((from, to)) = stack.pop() {
        std::fs::create_dir_all(&to).unwrap();
        for e in std::fs::read_dir(&from).unwrap().filter_map(Result::ok) {
            if e.path().is_dir() {
                stack.push((e.path(), to.join(e.file_name())));
            } else {
                std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
            }
        }
    }
    std::fs::remove_file(cat.join("kubernetes.yaml")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", cat.join("kubernetes.yaml")).unwrap();
    cat
}

fn gnu_time() -> Option<&'static str> {
    let ok = Command::new("/usr/bin/time").args(["-f", "%M", "true"]).output().is_ok_and(|o| o.status.success());
    ok.then_some("/usr/bin/time")
}

#[test]
fn every_bad_input_gets_its_exit_code_its_message_and_stays_within_memory_and_time() {
    let dir = scratch();
    let catalog = endless_catalog(&dir);
    let cat = catalog.to_str().unwrap();
    let home = dir.join("home");
    let rows = vec![
        row(
            "D13 a plan that never ends",
            &["apply", "--simulate", "--plan", "/dev/zero", "--yes"],
            1,
            "--plan /dev/zero is larger than 67108864 bytes",
            200,
            20,
        ),
        row(
            "D13 an endless catalog file",
            &["paths", "--distro", "kubeadm", "--from", "1.30", "--to", "1.31", "--paths", cat],
            1,
            "kubernetes.yaml is larger than 4194304 bytes",
            200,
            10,
        ),
        row(
            "D13 a limit raised on purpose still bounds",
            &["apply", "--simulate", "--plan", "/dev/zero", "--yes", "--max-input-bytes", "1000"],
            1,
            "larger than 1000 bytes",
            200,
            20,
        ),
        row(
            "D36 a version with an escape sequence",
            &["paths", "--distro", "kubeadm", "--from", "1.24", "--to", "1.25\u{1b}[2J"],
            2,
            "--to",
            100,
            10,
        ),
        row(
            "D36 a version with a newline",
            &["paths", "--distro", "kubeadm", "--from", "1.24\nerror: forged", "--to", "1.25"],
            2,
            "--from",
            100,
            10,
        ),
        row("a log format that does not exist", &["paths", "--log-format", "xml"], 2, "xml", 100, 10),
        row(
            "a missing plan file",
            &["apply", "--simulate", "--plan", "/nonexistent/plan.yaml", "--yes"],
            1,
            "cannot read --plan /nonexistent/plan.yaml",
            200,
            20,
        ),
    ];
    let time = gnu_time();
    if time.is_none() {
        eprintln!("bad-input suite: GNU time is not installed; peak memory is not measured");
    }
    let mut failures = Vec::new();
    for r in &rows {
        let rss_file = dir.join("rss");
        let mut cmd = match time {
            Some(t) => {
                let mut c = Command::new(t);
                c.arg("-f").arg("%M").arg("-o").arg(&rss_file).arg(env!("CARGO_BIN_EXE_k8s-upgrade"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_k8s-upgrade")),
        };
        cmd.args(&r.args).env("HOME", &home).env("NO_COLOR", "1").env_remove("KUBECONFIG").stdin(Stdio::null());
        let started = Instant::now();
        let o = cmd.output().unwrap();
        let took = started.elapsed();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        let mut why = Vec::new();
        if o.status.code() != Some(r.exit) {
            why.push(format!("exit {:?}, expected {}", o.status.code(), r.exit));
        }
        if !err.contains(r.phrase) {
            why.push(format!("stderr lacks {:?}", r.phrase));
        }
        if err.contains("panicked") || err.contains('\u{1b}') {
            why.push("a panic or a raw escape on stderr".into());
        }
        if took > r.max_time {
            why.push(format!("took {took:?}, ceiling {:?}", r.max_time));
        }
        if time.is_some() {
            // GNU time writes "Command exited with non-zero status N" first when it did.
            let text = std::fs::read_to_string(&rss_file).unwrap_or_default();
            let kb: u64 = text.lines().last().unwrap_or_default().trim().parse().unwrap_or(u64::MAX);
            if kb > r.max_rss_mb * 1024 {
                why.push(format!("peak memory {} MB, ceiling {} MB", kb / 1024, r.max_rss_mb));
            }
        }
        if !why.is_empty() {
            failures.push(format!("{}: {}\n  stderr: {}", r.name, why.join("; "), err.trim()));
        }
    }
    assert!(failures.is_empty(), "{} of {} rows failed:\n{}", failures.len(), rows.len(), failures.join("\n"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A plain-HTTP "apiserver" on loopback that answers `/version` with a body that never ends.
fn endless_body_server() -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(20) {
            let Ok(mut s) = stream else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{\"gitVersion\":\"",
                );
                let chunk = vec![b'a'; 1 << 20];
                // Up to 4 GiB, until the client hangs up.
                for _ in 0..4096 {
                    if s.write_all(&chunk).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn a_response_body_that_never_ends_is_cut_at_its_bound_d14() {
    let dir = scratch().join("d14");
    std::fs::create_dir_all(&dir).unwrap();
    let addr = endless_body_server();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: \"http://{addr}\"}}}}]\nusers: [{{name: u, user: {{}}}}]\ncontexts: [{{name: x, context: {{cluster: c, user: u}}}}]\ncurrent-context: x\n"
        ),
    )
    .unwrap();
    let rss = dir.join("rss");
    let time = gnu_time();
    let mut cmd = match time {
        Some(t) => {
            let mut c = Command::new(t);
            c.arg("-f").arg("%M").arg("-o").arg(&rss).arg(env!("CARGO_BIN_EXE_k8s-upgrade"));
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_k8s-upgrade")),
    };
    let started = Instant::now();
    let o = cmd
        .args(["plan", "--kubeconfig", kubeconfig.to_str().unwrap(), "--to", "1.30"])
        .env("HOME", &dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("GET /version is larger than 67108864 bytes"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    if time.is_some() {
        let text = std::fs::read_to_string(&rss).unwrap();
        let kb: u64 = text.lines().last().unwrap().trim().parse().unwrap();
        assert!(kb < 200 * 1024, "peak memory {} MB", kb / 1024);
    }
}
