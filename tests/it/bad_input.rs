//! The bad-input suite: each row an input an adversarial user (or a broken cluster, or a stalling
//! server) gives, the exit code, a phrase the output must hold, phrases it must not (secrets), and
//! ceilings on peak memory and time. Rows name the defect they pin (`review-adversarial`
//! numbering, D1 to D38) where they came from one; a row's setup builds its input (files, a
//! simulator, a loopback server, an earlier run) in a directory of its own, and rows run a few at
//! a time. Peak memory is measured with GNU time (`/usr/bin/time`; CI installs it); without it a
//! row still checks the rest and the suite says the memory was not measured.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::sim::Cluster;

/// What a row runs, built by its setup in the row's own directory.
struct Input {
    /// The program: `k8s-upgrade` unless a row runs a shell around it (`$0` is then our
    /// binary) or kubectl against a simulator.
    program: Program,
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: Option<Vec<u8>>,
    /// Kept alive while the row runs, and handed to `after`.
    cluster: Option<Cluster>,
    /// More checks once the run has ended (what it must not have changed, files it must not
    /// have written).
    after: Option<After>,
}

type After = Box<dyn FnOnce(&Output, Option<&Cluster>) -> Result<(), String>>;

enum Program {
    Ours,
    /// `bash -c SCRIPT BINARY`: the script calls our binary as `"$0"`.
    Bash(String),
    Kubectl,
}

fn ours(args: &[&str]) -> Input {
    Input {
        program: Program::Ours,
        args: args.iter().map(|s| s.to_string()).collect(),
        env: vec![],
        stdin: None,
        cluster: None,
        after: None,
    }
}

impl Input {
    fn on(mut self, c: Cluster) -> Input {
        self.cluster = Some(c);
        self
    }
    fn stdin(mut self, bytes: Vec<u8>) -> Input {
        self.stdin = Some(bytes);
        self
    }
    fn env(mut self, k: &str, v: &str) -> Input {
        self.env.push((k.into(), v.into()));
        self
    }
    fn after(mut self, f: impl FnOnce(&Output, Option<&Cluster>) -> Result<(), String> + 'static) -> Input {
        self.after = Some(Box::new(f));
        self
    }
}

struct Row {
    name: &'static str,
    setup: fn(&Path) -> Input,
    exit: i32,
    /// On stderr or stdout.
    phrase: &'static str,
    /// Never on stderr or stdout (secrets, the old wrong message).
    absent: &'static [&'static str],
    max_rss_mb: u64,
    secs: u64,
    /// The row's setup or program needs kubectl.
    kubectl: bool,
}

const fn row(name: &'static str, setup: fn(&Path) -> Input, exit: i32, phrase: &'static str) -> Row {
    Row { name, setup, exit, phrase, absent: &[], max_rss_mb: 200, secs: 30, kubectl: false }
}

impl Row {
    const fn absent(mut self, a: &'static [&'static str]) -> Row {
        self.absent = a;
        self
    }
    const fn within(mut self, secs: u64, max_rss_mb: u64) -> Row {
        self.secs = secs;
        self.max_rss_mb = max_rss_mb;
        self
    }
    const fn kubectl(mut self) -> Row {
        self.kubectl = true;
        self
    }
}

fn gnu_time() -> Option<&'static str> {
    let ok = Command::new("/usr/bin/time").args(["-f", "%M", "true"]).output().is_ok_and(|o| o.status.success());
    ok.then_some("/usr/bin/time")
}

fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_k8s-upgrade")
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// Runs one row; `Err` says every way it failed.
fn run_row(r: &Row, index: usize, base: &Path, time: Option<&str>) -> Result<(), String> {
    // Numbered: two rows whose names begin alike must never share a directory.
    let slug = r.name.split_whitespace().take(4).collect::<Vec<_>>().join("-").replace(['/', '\''], "_");
    let dir = base.join(format!("{index:02}-{slug}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("home")).unwrap();
    let input = (r.setup)(&dir);
    let rss_file = dir.join("rss");
    let (program, mut args): (String, Vec<String>) = match &input.program {
        Program::Ours => (binary().into(), vec![]),
        Program::Bash(script) => ("bash".into(), vec!["-c".into(), script.clone(), binary().into()]),
        Program::Kubectl => ("kubectl".into(), vec![]),
    };
    args.extend(input.args.iter().cloned());
    let mut cmd = match time {
        Some(t) => {
            let mut c = Command::new(t);
            c.arg("-f").arg("%M").arg("-o").arg(&rss_file).arg(&program);
            c
        }
        None => Command::new(&program),
    };
    for (k, _) in std::env::vars() {
        if k.starts_with("K8S_UPGRADE_") || k == "KUBECONFIG" || k.starts_with("KUBERNETES_SERVICE_") {
            cmd.env_remove(k);
        }
    }
    if let (Program::Kubectl, Some(c)) = (&input.program, &input.cluster) {
        cmd.env("KUBECONFIG", &c.kubeconfig);
    }
    cmd.args(&args)
        .env("K8S_UPGRADE_TODAY", crate::common::TODAY)
        .env("NO_COLOR", "1")
        .env("HOME", dir.join("home"))
        .envs(input.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&dir)
        .process_group(0)
        .stdin(if input.stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("cannot run {program}: {e}"))?;
    let group = child.id();
    if let (Some(bytes), Some(mut pipe)) = (input.stdin, child.stdin.take()) {
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        });
    }
    // A row that hangs fails (its whole process group is killed) instead of hanging the suite.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let o = match rx.recv_timeout(Duration::from_secs(r.secs) + Duration::from_secs(30)) {
        Ok(o) => o.map_err(|e| e.to_string())?,
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", "--", &format!("-{group}")]).status();
            return Err(format!("still running after {} s; killed", r.secs + 30));
        }
    };
    let took = started.elapsed();
    let (out, err) = (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned());
    let mut why = Vec::new();
    if o.status.code() != Some(r.exit) {
        why.push(format!("exit {:?}, expected {}", o.status.code(), r.exit));
    }
    if !err.contains(r.phrase) && !out.contains(r.phrase) {
        why.push(format!("the output lacks {:?}", r.phrase));
    }
    for a in r.absent {
        if err.contains(a) || out.contains(a) {
            why.push(format!("the output holds {a:?}"));
        }
    }
    if err.contains("panicked") || err.contains('\u{1b}') {
        why.push("a panic or a raw escape on stderr".into());
    }
    if took > Duration::from_secs(r.secs) {
        why.push(format!("took {took:?}, ceiling {} s", r.secs));
    }
    if time.is_some() {
        // GNU time writes "Command exited with non-zero status N" first when it did.
        let text = std::fs::read_to_string(&rss_file).unwrap_or_default();
        let kb: u64 = text.lines().last().unwrap_or_default().trim().parse().unwrap_or(u64::MAX);
        if kb > r.max_rss_mb * 1024 {
            why.push(format!("peak memory {} MB, ceiling {} MB", kb / 1024, r.max_rss_mb));
        }
    }
    if why.is_empty()
        && let Some(after) = input.after
        && let Err(e) = after(&o, input.cluster.as_ref())
    {
        why.push(e);
    }
    if why.is_empty() {
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    } else {
        let tail =
            |t: &str| t.lines().rev().take(12).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n    ");
        Err(format!("{}\n  stdout: {}\n  stderr: {}", why.join("; "), tail(&out), tail(&err)))
    }
}

// ---------------------------------------------------------------------------------------------
// Inputs

fn kubeconfig_to(dir: &Path, server: &str, user: &str) -> PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: \"{server}\"}}}}]\nusers: [{{name: u, user: {user}}}]\ncontexts: [{{name: x, context: {{cluster: c, user: u}}}}]\ncurrent-context: x\n"
        ),
    )
    .unwrap();
    path
}

fn executable(path: &Path, text: &str) -> PathBuf {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    path.to_path_buf()
}

/// A kubeadm cluster at 1.30.4: one control-plane node, three workers, a budgeted Deployment.
fn cluster() -> Cluster {
    Cluster::start(crate::sim::small("1.30.4"), 0.05)
}

/// An upgrade command: runs `before`, then has the simulator upgrade the node (the annotation
/// its kubelets act on), as a real command would upgrade it.
fn upgrade_script(c: &Cluster, dir: &Path, before: &str) -> String {
    let script = executable(
        &dir.join("upgrade.sh"),
        &format!(
            "#!/bin/sh\nset -e\n{before}\ncase \"$3\" in worker|control-plane) kubectl --kubeconfig {kc} annotate --overwrite node \"$1\" \"sim.k8s-upgrade.dev/upgrade-to=$2\" >/dev/null ;; esac\n",
            kc = c.kubeconfig.display()
        ),
    );
    format!("{} {{node}} {{version}} {{role}}", script.display())
}

/// `apply` on `c` to 1.31 with a journal and events in `dir`, then `extra`.
fn apply_args(c: &Cluster, dir: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> =
        ["apply", "--kubeconfig", &s(&c.kubeconfig), "--journal", &s(&dir.join("journal.json"))]
            .map(String::from)
            .to_vec();
    args.extend(["--events", &s(&dir.join("events.jsonl")), "--yes", "--gate-passes", "1"].map(String::from));
    if !extra.contains(&"--to") && !extra.contains(&"--resume") && !extra.contains(&"--plan") {
        args.extend(["--to".to_string(), "1.31".to_string()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    if !extra.contains(&"--upgrader") {
        args.extend(["--upgrader".to_string(), "sim".to_string()]);
    }
    args
}

fn apply_input(c: Cluster, dir: &Path, extra: &[&str]) -> Input {
    let args = apply_args(&c, dir, extra);
    Input { args, ..ours(&[]) }.on(c)
}

/// Runs `apply` once as a setup step, expecting `exit`.
fn apply_before(c: &Cluster, dir: &Path, extra: &[&str], exit: i32) {
    let o = crate::common::command().env("HOME", dir.join("home")).args(apply_args(c, dir, extra)).output().unwrap();
    assert_eq!(o.status.code(), Some(exit), "setup run: {}\n{}", crate::common::stdout(&o), crate::common::stderr(&o));
}

/// Every node at `minor`, schedulable and Ready, and no budget broken.
fn finished_clean(c: &Cluster, minor: &str) -> Result<(), String> {
    let stats = c.stats();
    if stats["pdbViolations"] != 0 || stats["podsLost"] != 0 {
        return Err(format!("disruption: {stats}"));
    }
    for n in stats["nodes"].as_array().unwrap() {
        if !n["kubeletVersion"].as_str().unwrap_or_default().starts_with(&format!("v{minor}."))
            || n["schedulable"] != true
            || n["ready"] != true
        {
            return Err(format!("not finished: {n}"));
        }
    }
    Ok(())
}

fn lease_free(c: &Cluster) -> Result<(), String> {
    let (status, body) = c.http(
        "GET",
        "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/k8s-upgrade-lock",
        "application/json",
        "",
    );
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    if status == 404 || v["spec"]["holderIdentity"].as_str().unwrap_or_default().is_empty() {
        Ok(())
    } else {
        Err(format!("the lock is still held: {body}"))
    }
}

/// A loopback server that answers each connection with `answer` (which may never end).
fn loopback(answer: fn(&mut std::net::TcpStream, &str)) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(64) {
            let Ok(mut s) = stream else { continue };
            std::thread::spawn(move || {
                // Keep-alive: one request after another on the connection.
                loop {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        match s.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(_) => head.push(buf[0]),
                        }
                    }
                    let line = String::from_utf8_lossy(&head).lines().next().unwrap_or_default().to_string();
                    answer(&mut s, &line);
                }
            });
        }
    });
    addr
}

const VERSION_131: &str = r#"{"major":"1","minor":"31","gitVersion":"v1.31.4","platform":"linux/amd64"}"#;

fn respond(s: &mut std::net::TcpStream, body: &str) {
    let _ =
        write!(s, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len());
}

/// A server that accepts connections and never says a word.
fn silent_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().take(64).flatten() {
            held.push(s);
        }
        std::thread::sleep(Duration::from_secs(600));
    });
    addr
}

fn plan_against(dir: &Path, addr: SocketAddr, extra: &[&str]) -> Input {
    let kc = kubeconfig_to(dir, &format!("http://{addr}"), "{}");
    let mut args = vec!["plan".to_string(), "--kubeconfig".into(), s(&kc), "--to".into(), "1.32".into()];
    args.extend(extra.iter().map(|s| s.to_string()));
    Input { args, ..ours(&[]) }
}

/// `plan --simulate FILE --to 1.31` over a scenario at 1.30.4 with these pools and the rest.
fn scenario_plan(dir: &Path, pools: &str, rest: &str) -> Input {
    std::fs::write(
        dir.join("s.yaml"),
        format!("name: s\ncluster: {{ version: \"1.30.4\", distro: kubeadm }}\nnodePools:\n{pools}{rest}"),
    )
    .unwrap();
    ours(&["plan", "--simulate", "s.yaml", "--to", "1.31"])
}

/// A manifest of `kind` in `api_version` named `name`.
fn manifest(api_version: &str, kind: &str, name: &str) -> String {
    format!("apiVersion: {api_version}\nkind: {kind}\nmetadata:\n  name: {name}\n")
}

/// `plan --from 1.24.17 --to 1.25 -o json --manifests FILE`: batch/v1beta1 CronJobs stop being
/// served at 1.25.
fn plan_manifests(file: &str) -> Input {
    ours(&["plan", "--distro", "kubeadm", "--from", "1.24.17", "--to", "1.25", "-o", "json", "--manifests", file])
}

/// The API_REMOVED findings' `Kind name`.
fn removed(o: &Output) -> Vec<String> {
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    let mut found: Vec<String> = doc["findings"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(|f| f["code"] == "API_REMOVED")
        .map(|f| {
            format!("{} {}", f["details"]["kind"].as_str().unwrap_or("?"), f["details"]["name"].as_str().unwrap_or("?"))
        })
        .collect();
    found.sort();
    found.dedup();
    found
}

fn expect_removed(want: &'static [&'static str]) -> impl FnOnce(&Output, Option<&Cluster>) -> Result<(), String> {
    move |o, _| {
        let got = removed(o);
        if got == want { Ok(()) } else { Err(format!("removed-API findings {got:?}, expected {want:?}")) }
    }
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

// ---------------------------------------------------------------------------------------------
// The table

fn rows() -> Vec<Row> {
    vec![
        row("D1 an HTTPS cluster with its CA in the kubeconfig", |_| {
            let c = cluster();
            ours(&["plan", "--kubeconfig", &s(&c.kubeconfig), "--to", "1.31"]).on(c)
        }, 0, "1.31"),
        row("D2 D3 an upgrade command that floods stderr with 64 MB", |dir| {
            let c = cluster();
            // Only on the control plane: more than a pipe holds, long before anything on stdout.
            let cmd = upgrade_script(&c, dir, "if [ \"$3\" = control-plane ]; then head -c 64000000 /dev/zero | tr '\\0' x | fold -w 1000 >&2; fi");
            apply_input(c, dir, &["--upgrader", "command", "--upgrade-command", &cmd]).after(|_, c| finished_clean(c.unwrap(), "1.31"))
        }, 0, "Finished").within(180, 200).kubectl(),
        row("D4 a timed-out upgrade command's background child ends with it", |dir| {
            let c = cluster();
            let marker = dir.join("grandchild-alive");
            let cmd = upgrade_script(&c, dir, &format!("(sleep 4; touch {}) & sleep 60", marker.display()));
            apply_input(c, dir, &["--upgrader", "command", "--upgrade-command", &cmd, "--upgrade-timeout", "2s"]).after(move |_, _| {
                std::thread::sleep(Duration::from_secs(5));
                if marker.exists() { Err("a grandchild outlived the timeout".into()) } else { Ok(()) }
            })
        }, 3, "did not finish within 2s").within(60, 200).kubectl(),
        row("D5 an upgrade command that exits leaving a background child", |dir| {
            let c = cluster();
            // The child keeps the command's stdout open for 30 s; the command itself is done.
            let cmd = upgrade_script(&c, dir, "sleep 30 &");
            apply_input(c, dir, &["--upgrader", "command", "--upgrade-command", &cmd]).after(|_, c| finished_clean(c.unwrap(), "1.31"))
        }, 0, "still holds its output, which is no longer read").within(90, 200).kubectl(),
        row("D6 a resume after a failed upgrade command runs it again", |dir| {
            let c = cluster();
            let cmd = upgrade_script(&c, dir, &format!("if [ ! -e {m} ]; then touch {m}; exit 100; fi", m = dir.join("failed-once").display()));
            apply_before(&c, dir, &["--upgrader", "command", "--upgrade-command", &cmd], 3);
            apply_input(c, dir, &["--resume", "--upgrader", "command", "--upgrade-command", &cmd]).after(|_, c| finished_clean(c.unwrap(), "1.31"))
        }, 0, "Finished").within(90, 200).kubectl(),
        row("D7 an events file that cannot be opened takes no lock", |dir| {
            let c = cluster();
            let mut input = apply_input(c, dir, &[]);
            let at = input.args.iter().position(|a| a == "--events").unwrap();
            input.args[at + 1] = "/nonexistent/dir/events.jsonl".into();
            let journal = dir.join("journal.json");
            input.after(move |_, c| {
                if journal.exists() { return Err("a journal was written".into()) }
                lease_free(c.unwrap())
            })
        }, 1, "/nonexistent/dir/events.jsonl"),
        row("D7 a journal that cannot be written releases the lock", |dir| {
            let c = cluster();
            std::fs::write(dir.join("not-a-dir"), "").unwrap();
            let mut input = apply_input(c, dir, &[]);
            let at = input.args.iter().position(|a| a == "--journal").unwrap();
            input.args[at + 1] = s(&dir.join("not-a-dir/journal.json"));
            input.after(|_, c| lease_free(c.unwrap()))
        }, 1, "nothing was started and the lock is released"),
        row("D8 a new apply --to does not overwrite an unfinished run's journal", |dir| {
            let c = cluster();
            let cmd = upgrade_script(&c, dir, "exit 100");
            apply_before(&c, dir, &["--upgrader", "command", "--upgrade-command", &cmd], 3);
            let before = std::fs::read(dir.join("journal.json")).unwrap();
            let journal = dir.join("journal.json");
            apply_input(c, dir, &[]).after(move |_, _| {
                if std::fs::read(&journal).unwrap() == before { Ok(()) } else { Err("the journal was rewritten".into()) }
            })
        }, 1, "holds the unfinished run").within(60, 200).kubectl(),
        row("D9 --break-lock while the holder still runs", |dir| {
            // Slow enough that the holder is mid-roll when the lock is broken.
            let c = Cluster::builtin("demo", 0.2);
            let quote = |args: Vec<String>| args.iter().map(|a| format!("'{a}'")).collect::<Vec<_>>().join(" ");
            let a = quote(apply_args(&c, dir, &["--to", "1.25", "--delete-emptydir-data", "--force"]));
            let b = quote(
                apply_args(&c, dir, &["--to", "1.25", "--delete-emptydir-data", "--force", "--break-lock"])
                    .into_iter()
                    .map(|x| x.replace("journal.json", "b.journal.json").replace("events.jsonl", "b.events.jsonl"))
                    .collect(),
            );
            Input {
                program: Program::Bash(format!(
                    "\"$0\" {a} > a.out 2>&1 & a=$!; until grep -q '\"phase\":\"cordoned\"' events.jsonl 2>/dev/null; do sleep 0.05; done; \
                     \"$0\" {b} > b.out 2>&1 & b=$!; wait $a; echo \"displaced run exited $?\"; \
                     echo \"cordons by the breaking run meanwhile: $(grep -c '\"phase\":\"cordoned\"' b.events.jsonl)\"; \
                     kill $b; wait $b; cat a.out b.out"
                )),
                ..ours(&[])
            }
            .on(c)
        }, 0, "displaced run exited 1\ncordons by the breaking run meanwhile: 0").within(120, 300),
        row("D10 apply --plan refuses a blocker that appeared after the save", |dir| {
            let c = cluster();
            let saved = dir.join("plan.yaml");
            let o = crate::common::run(&["plan", "--kubeconfig", &s(&c.kubeconfig), "--to", "1.31", "--save", &s(&saved)]);
            assert_eq!(o.status.code(), Some(0), "{}", crate::common::stderr(&o));
            let pods = c.get_json("/api/v1/namespaces/default/pods?labelSelector=app%3Dweb");
            let web = pods["items"][0]["metadata"]["name"].as_str().unwrap().to_string();
            let (status, body) = c.http(
                "PATCH",
                &format!("/api/v1/namespaces/default/pods/{web}"),
                "application/merge-patch+json",
                r#"{"metadata":{"annotations":{"karpenter.sh/do-not-disrupt":"true"}}}"#,
            );
            assert_eq!(status, 200, "{body}");
            let journal = dir.join("journal.json");
            apply_input(c, dir, &["--plan", &s(&saved)]).after(move |_, _| {
                if journal.exists() { Err("the run started".into()) } else { Ok(()) }
            })
        }, 3, "POD_EVICTION_VETOED"),
        row("D11 the inventory of a 9,000-pod cluster reads back", |dir| {
            let scenario = dir.join("mid.yaml");
            std::fs::write(&scenario, "name: mid\ncluster: { version: \"1.29.10\", distro: kubeadm }\nnodePools:\n  - { name: cp, count: 1, roles: [control-plane], taints: [{ key: node-role.kubernetes.io/control-plane, effect: NoSchedule }] }\n  - { name: w, count: 120, roles: [worker] }\nworkloads:\n  - { kind: Deployment, name: web, replicas: 9000 }\n").unwrap();
            let o = crate::common::run(&["inventory", "--simulate", &s(&scenario), "-o", "yaml"]);
            assert_eq!(o.status.code(), Some(0), "{}", crate::common::stderr(&o));
            std::fs::write(dir.join("inv.yaml"), &o.stdout).unwrap();
            ours(&["plan", "--inventory", "inv.yaml", "--to", "1.30", "-o", "json"])
        }, 0, "\"from\": \"1.29.10\"").within(90, 500),
        row("D12 a control plane killed half-way through its upgrade is planned", |dir| {
            let c = Cluster::builtin("demo", 0.02);
            let (status, _) = c.http("PATCH", "/sim/faults", "application/json", r#"{"latencyMs": 5}"#);
            assert_eq!(status, 200);
            let mut child = crate::common::command()
                .env("HOME", dir.join("home"))
                .args(apply_args(&c, dir, &["--to", "1.25", "--delete-emptydir-data", "--force"]))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let started = Instant::now();
            while !std::fs::read_to_string(dir.join("events.jsonl")).unwrap_or_default().lines().any(|l| {
                serde_json::from_str::<Value>(l).is_ok_and(|e| e["event"] == "node" && e["node"] == "cp-1" && e["phase"] == "done")
            }) {
                assert!(started.elapsed() < Duration::from_secs(60), "cp-1 never finished");
                std::thread::sleep(Duration::from_millis(20));
            }
            child.kill().unwrap();
            child.wait().unwrap();
            ours(&["plan", "--kubeconfig", &s(&c.kubeconfig), "--to", "1.26", "-o", "json"]).on(c)
        }, 3, "UPGRADE_IN_PROGRESS").absent(&["check --kubelet"]).within(60, 200),
        row("D13 a plan that is a device", |_| ours(&["apply", "--simulate", "--plan", "/dev/zero", "--yes"]), 1, "--plan /dev/zero is not text: it holds a NUL byte at offset 0").within(20, 200),
        row("D13 a plan on a pipe that never ends", |_| Input {
            program: Program::Bash("yes 'steps: []' | \"$0\" apply --simulate --plan /dev/stdin --yes".into()),
            ..ours(&[])
        }, 1, "--plan /dev/stdin is larger than 67108864 bytes, the limit for it; if it is what you meant, raise the limit with --max-input-bytes").within(20, 200),
        row("D13 a limit raised on purpose still bounds", |_| Input {
            program: Program::Bash("yes 'steps: []' | \"$0\" apply --simulate --plan /dev/stdin --yes --max-input-bytes 1000".into()),
            ..ours(&[])
        }, 1, "larger than 1000 bytes").within(20, 200),
        row("D13 an endless catalog file", |dir| {
            let cat = endless_catalog(dir);
            ours(&["paths", "--distro", "kubeadm", "--from", "1.30", "--to", "1.31", "--paths", &s(&cat)])
        }, 1, "kubernetes.yaml is not text").within(10, 200),
        row("D13 an inventory that is a device", |_| ours(&["plan", "--inventory", "/dev/zero", "--to", "1.31"]), 1, "--inventory /dev/zero is not text").within(20, 200),
        row("D14 a /version body that never ends", |dir| plan_against(dir, endless_body_server(), &[]), 1, "GET /version is larger than 67108864 bytes").within(20, 200),
        row("D15 an exec credential plugin that never returns", |dir| {
            let plugin = executable(&dir.join("hang.sh"), "#!/bin/sh\nsleep 600\n");
            let kc = kubeconfig_to(dir, "https://127.0.0.1:1", &format!("{{exec: {{apiVersion: client.authentication.k8s.io/v1beta1, command: {}, interactiveMode: Never}}}}", plugin.display()));
            ours(&["plan", "--kubeconfig", &s(&kc), "--to", "1.31", "--exec-timeout", "2s"])
        }, 1, "hang.sh\" did not finish within 2s; it was killed").within(15, 200),
        row("D16 an exec plugin that fails after printing a token", |dir| {
            let plugin = executable(&dir.join("leak.sh"), "#!/bin/sh\necho '{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\",\"kind\":\"ExecCredential\",\"status\":{\"token\":\"SECRET-IN-STDOUT\"}}'\necho 'token=SECRET-IN-STDERR' >&2\nexit 3\n");
            let kc = kubeconfig_to(dir, "https://127.0.0.1:1", &format!("{{exec: {{apiVersion: client.authentication.k8s.io/v1beta1, command: {}, interactiveMode: Never}}}}", plugin.display()));
            ours(&["plan", "--kubeconfig", &s(&kc), "--to", "1.31"])
        }, 1, "cannot get a credential").absent(&["SECRET-IN"]),
        row("D17 a password in the server URL", |dir| {
            let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
            let kc = kubeconfig_to(dir, &format!("http://admin:hunter2@{closed}"), "{}");
            ours(&["plan", "--kubeconfig", &s(&kc), "--to", "1.31", "-v"])
        }, 1, "connection refused").absent(&["hunter2"]),
        row("D18 the simulator's kubeconfig does not follow a planted symlink", |dir| {
            std::fs::write(dir.join("victim"), "precious\n").unwrap();
            std::os::unix::fs::symlink(dir.join("victim"), dir.join("sim.kubeconfig")).unwrap();
            let victim = dir.join("victim");
            Input {
                program: Program::Bash("\"$0\" simulate --kubeconfig-out sim.kubeconfig & pid=$!; for i in $(seq 200); do [ -L sim.kubeconfig ] || break; sleep 0.05; done; [ -f sim.kubeconfig ] && ! [ -L sim.kubeconfig ] && [ \"$(stat -c %a sim.kubeconfig)\" = 600 ] && echo private; kill $pid; wait $pid; [ -e sim.kubeconfig ] || echo removed".into()),
                ..ours(&[])
            }
            .after(move |_, _| {
                if std::fs::read_to_string(&victim).unwrap() != "precious\n" {
                    return Err("the symlink's target was overwritten".into());
                }
                Ok(())
            })
        }, 0, "private\nremoved"),
        row("D19 a removed API after 40 MiB on stdin", |_| {
            let mut text = String::new();
            let filler = format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: filler\ndata:\n  blob: \"{}\"\n", "y".repeat(4000));
            while text.len() < 40 << 20 {
                text.push_str(&filler);
            }
            text.push_str("---\n");
            text.push_str(&manifest("batch/v1beta1", "CronJob", "last"));
            plan_manifests("-").stdin(text.into_bytes()).after(expect_removed(&["CronJob last"]))
        }, 3, "").within(120, 400),
        row("D20 content written on a --- line", |dir| {
            std::fs::write(dir.join("m.yaml"), "--- {apiVersion: batch/v1beta1, kind: CronJob, metadata: {name: x}}\n").unwrap();
            plan_manifests("m.yaml").after(expect_removed(&["CronJob x"]))
        }, 3, ""),
        row("D21 kind: inside a multi-line quoted string", |dir| {
            std::fs::write(dir.join("m.yaml"), "apiVersion: batch/v1beta1\nkind: CronJob\nmetadata:\n  name: nightly\n  annotations:\n    note: \"first line\nkind: ConfigMap\n      still the note\"\n").unwrap();
            plan_manifests("m.yaml").after(expect_removed(&["CronJob nightly"]))
        }, 3, ""),
        row("D22 a symlinked directory inside a scanned tree", |dir| {
            std::fs::create_dir_all(dir.join("elsewhere")).unwrap();
            std::fs::create_dir_all(dir.join("tree")).unwrap();
            std::fs::write(dir.join("elsewhere/cron.yaml"), manifest("batch/v1beta1", "CronJob", "linked")).unwrap();
            std::os::unix::fs::symlink(dir.join("elsewhere"), dir.join("tree/linked")).unwrap();
            // A loop back to the tree's root is read once, not for ever.
            std::os::unix::fs::symlink(dir.join("tree"), dir.join("tree/loop")).unwrap();
            plan_manifests("tree").after(expect_removed(&["CronJob linked"]))
        }, 3, ""),
        row("D23 a List inside a List", |dir| {
            std::fs::write(
                dir.join("m.yaml"),
                "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: List\n  items:\n  - apiVersion: batch/v1beta1\n    kind: CronJob\n    metadata: {name: nested}\n",
            )
            .unwrap();
            plan_manifests("m.yaml").after(expect_removed(&["CronJob nested"]))
        }, 3, ""),
        row("D24 a FIFO as --manifests (process substitution)", |dir| {
            let fifo = dir.join("fifo");
            assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
            let writer = fifo.clone();
            std::thread::spawn(move || {
                if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&writer) {
                    let _ = f.write_all(manifest("batch/v1beta1", "CronJob", "piped").as_bytes());
                }
            });
            plan_manifests(&s(&fifo)).after(expect_removed(&["CronJob piped"]))
        }, 3, "").absent(&["Not a directory"]),
        row("D25 a %YAML directive", |dir| {
            std::fs::write(dir.join("m.yaml"), format!("%YAML 1.2\n---\n{}", manifest("batch/v1beta1", "CronJob", "directed"))).unwrap();
            plan_manifests("m.yaml").after(expect_removed(&["CronJob directed"]))
        }, 3, "").absent(&["not valid YAML"]),
        row("D26 apply's stdout closed by head -1", |dir| {
            let state = dir.join("state");
            Input {
                program: Program::Bash("set -o pipefail; \"$0\" apply --simulate --to 1.25 --yes --delete-emptydir-data --force | head -1".into()),
                ..ours(&[]).env("K8S_UPGRADE_TIME_SCALE", "0.02").env("XDG_STATE_HOME", &s(&state))
            }
            .after(move |_, _| {
                // Nor does a simulated run leave a journal that could never be resumed.
                let left: Vec<_> = std::fs::read_dir(state.join("k8s-upgrade")).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
                if left.is_empty() { Ok(()) } else { Err(format!("left behind: {left:?}")) }
            })
        }, 0, "Finished").absent(&["Broken pipe"]).within(120, 200),
        row("D27 a watch with a timeoutSeconds past int64", |_| {
            let c = cluster();
            Input { program: Program::Kubectl, ..ours(&["get", "--raw", "/api/v1/pods?watch=1&timeoutSeconds=18446744073709551615"]) }.on(c)
        }, 1, "BadRequest").kubectl(),
        row("D28 503s on the add-on steps' reads and patches", |dir| {
            let c = cluster();
            let (status, body) = c.http(
                "PATCH",
                "/sim/faults",
                "application/json",
                r#"{"errors":[{"verb":"get","resource":"daemonsets","code":503,"rate":0.5,"retryAfter":1},{"verb":"patch","resource":"daemonsets","code":503,"rate":0.5,"retryAfter":1}]}"#,
            );
            assert_eq!(status, 200, "{body}");
            apply_input(c, dir, &[]).after(|_, c| finished_clean(c.unwrap(), "1.31"))
        }, 0, "Finished").within(120, 200),
        row("D29 SIGTERM in the middle of a run", |dir| {
            let c = cluster();
            let args = apply_args(&c, dir, &[]).iter().map(|a| format!("'{a}'")).collect::<Vec<_>>().join(" ");
            Input {
                program: Program::Bash(format!(
                    "\"$0\" {args} & pid=$!; until grep -q cordoned events.jsonl 2>/dev/null; do sleep 0.05; done; kill -TERM $pid; wait $pid"
                )),
                ..ours(&[])
            }
            .on(c)
            .after(|o, _| {
                let out = String::from_utf8_lossy(&o.stdout);
                if out.contains("to continue: k8s-upgrade apply --resume") { Ok(()) } else { Err("no resume hint".into()) }
            })
        }, 130, "SIGTERM: stopping at the next safe point").within(60, 200),
        row("D30 a server whose gitVersion is not a version", |dir| {
            plan_against(dir, loopback(|s, _| respond(s, r#"{"major":"1","minor":"29","gitVersion":"v1.29.3.4"}"#)), &[])
        }, 1, "not a Kubernetes version").absent(&["pass --from"]),
        row("D31 a journal edited to upgrade to 9.99.0", |dir| {
            let c = cluster();
            let cmd = upgrade_script(&c, dir, "exit 100");
            apply_before(&c, dir, &["--upgrader", "command", "--upgrade-command", &cmd], 3);
            let path = dir.join("journal.json");
            let mut j: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            for r in j["nodes"].as_object_mut().unwrap().values_mut() {
                r["target"] = json!("9.99.0");
            }
            std::fs::write(&path, j.to_string()).unwrap();
            apply_input(c, dir, &["--resume", "--upgrader", "command", "--upgrade-command", &cmd])
        }, 1, "cannot be resumed").within(60, 200).kubectl(),
        row("D32 a scenario whose pools share a name", |dir| scenario_plan(dir, "  - { name: w, count: 2 }\n  - { name: w, count: 2 }\n", ""), 1, "field 'nodePools[1].name'").within(10, 200),
        row("D32 a scenario node name a real API refuses", |dir| scenario_plan(dir, "  - { name: '$(touch x);x', count: 1 }\n", ""), 1, "field 'nodePools[0].name': invalid value").within(10, 200),
        row("D32 a scenario quantity that is not one", |dir| scenario_plan(dir, "  - { name: w, count: 1, capacity: { cpu: abc } }\n", ""), 1, "field 'nodePools[0].capacity.cpu'").within(10, 200),
        row("D32 a scenario budget of 150%", |dir| scenario_plan(dir, "  - { name: w, count: 2 }\n", "workloads: [{ kind: Deployment, name: web, pdb: { maxUnavailable: '150%' } }]\n"), 1, "must not be greater than 100%").within(10, 200),
        row("D32 a scenario add-on version that is not one", |dir| scenario_plan(dir, "  - { name: w, count: 2 }\n", "addons: [{ name: coredns, version: not-a-version }]\n"), 1, "field 'addons[0].version'").within(10, 200),
        row("D32 a scenario type error names its field", |dir| scenario_plan(dir, "  - { name: w, count: many }\n", ""), 1, "field 'nodePools[0].count'").within(10, 200),
        row("D33 kubectl patch to 100000000 replicas", |_| {
            let c = cluster();
            Input { program: Program::Kubectl, ..ours(&["patch", "deployment", "web", "-p", r#"{"spec":{"replicas":100000000}}"#]) }
                .on(c)
                .after(|_, c| {
                    let d = c.unwrap().get_json("/apis/apps/v1/namespaces/default/deployments/web");
                    if d["spec"]["replicas"] == 3 { Ok(()) } else { Err(format!("replicas changed: {}", d["spec"]["replicas"])) }
                })
        }, 1, "must be no more than 100000").kubectl(),
        row("D34 an unknown field selector", |_| {
            let c = cluster();
            Input { program: Program::Kubectl, ..ours(&["get", "pods", "-A", "--field-selector", "spec.foo.bar=x"]) }.on(c)
        }, 1, "field label not supported: spec.foo.bar").kubectl(),
        row("D34 a label selector of 5,000 parentheses", |_| {
            let c = cluster();
            let selector = "(".repeat(5000);
            let mut input = Input { program: Program::Kubectl, ..ours(&["get", "pods", "-A", "-l"]) }.on(c);
            input.args.push(selector);
            input
        }, 1, "BadRequest").kubectl(),
        row("D34 a resourceVersion that is not a number", |_| {
            let c = cluster();
            Input { program: Program::Kubectl, ..ours(&["get", "--raw", "/api/v1/pods?resourceVersion=abc"]) }.on(c)
        }, 1, "invalid resource version").kubectl(),
        row("D34 a body in text/xml and a future resourceVersion", |dir| {
            let c = cluster();
            let (status, body) = c.http("POST", "/api/v1/namespaces/default/configmaps", "text/xml", r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}"#);
            let (future, future_body) = c.http("GET", "/api/v1/namespaces/default/configmaps?resourceVersion=999999999", "application/json", "");
            std::fs::write(dir.join("answers"), format!("{status} {body}\n{future} {future_body}\n")).unwrap();
            Input { program: Program::Bash("cat answers".into()), ..ours(&[]) }.on(c).after(move |o, _| {
                let text = String::from_utf8_lossy(&o.stdout);
                if text.starts_with("415 ") && text.contains("\n504 ") && text.contains("Too large resource version") {
                    Ok(())
                } else {
                    Err(format!("answers: {text}"))
                }
            })
        }, 0, "UnsupportedMediaType").within(30, 200),
        row("D35 a fault latency of u64::MAX", |dir| {
            let c = cluster();
            let (status, body) = c.http("PATCH", "/sim/faults", "application/json", r#"{"latencyMs": 18446744073709551615}"#);
            std::fs::write(dir.join("answer"), format!("{status} {body}\n")).unwrap();
            Input { program: Program::Bash("cat answer".into()), ..ours(&[]) }.on(c).after(|o, c| {
                let text = String::from_utf8_lossy(&o.stdout);
                // Refused, and the simulator still answers at once.
                let started = Instant::now();
                let _ = c.unwrap().get_json("/api/v1/nodes");
                if text.starts_with("4") && started.elapsed() < Duration::from_secs(2) { Ok(()) } else { Err(format!("answer: {text}")) }
            })
        }, 0, "latencyMs").within(30, 200),
        row("D36 a version with an escape sequence", |_| ours(&["paths", "--distro", "kubeadm", "--from", "1.24", "--to", "1.25\u{1b}[2J"]), 2, "--to").within(10, 100),
        row("D36 a version with a newline", |_| ours(&["paths", "--distro", "kubeadm", "--from", "1.24\nerror: forged", "--to", "1.25"]), 2, "--from").within(10, 100),
        row("D37 apply --dry-run says nothing changed", |dir| {
            let c = cluster();
            apply_input(c, dir, &["--dry-run"]).after(|_, c| {
                let stats = c.unwrap().stats();
                if stats["nodes"].as_array().unwrap().iter().all(|n| n["kubeletVersion"].as_str().unwrap().starts_with("v1.30.")) {
                    Ok(())
                } else {
                    Err(format!("a dry run changed a node: {stats}"))
                }
            })
        }, 0, "Dry run finished").absent(&["nodes upgraded"]).within(60, 200),
        row("D38 a first Ctrl-C while a node is upgraded by hand", |dir| {
            let c = cluster();
            let args = apply_args(&c, dir, &["--upgrader", "manual"]).iter().map(|a| format!("'{a}'")).collect::<Vec<_>>().join(" ");
            Input {
                program: Program::Bash(format!(
                    "\"$0\" {args} & pid=$!; until grep -q '\"phase\":\"upgrading\"' events.jsonl 2>/dev/null; do sleep 0.05; done; sleep 0.3; kill -INT $pid; wait $pid"
                )),
                ..ours(&[])
            }
            .on(c)
        }, 130, "to be upgraded by hand to 1.31").within(30, 200),
        // Peers that stall: every command is bounded, with the default settings.
        row("a server that accepts and never answers", |dir| plan_against(dir, silent_server(), &[]), 1, "did not answer in time").within(30, 200),
        row("a server that sends its headers and stops", |dir| {
            plan_against(dir, loopback(|s, _| {
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{");
                std::thread::sleep(Duration::from_secs(600));
            }), &[])
        }, 1, "did not answer in time").within(30, 200),
        row("a server that trickles a byte a second", |dir| {
            plan_against(dir, loopback(|s, _| {
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"a\":\"");
                for _ in 0..600 {
                    std::thread::sleep(Duration::from_secs(1));
                    if s.write_all(b"x").is_err() {
                        return;
                    }
                }
            }), &[])
        }, 1, "did not answer in time").within(30, 200),
        row("a server that answers /version and stalls on the next request", |dir| {
            plan_against(dir, loopback(|s, line| {
                if line.starts_with("GET /version") {
                    respond(s, VERSION_131);
                } else {
                    std::thread::sleep(Duration::from_secs(600));
                }
            }), &["--request-timeout", "3s"])
        }, 1, "got no complete answer within 3s; raise --request-timeout").within(30, 200),
        // Usage and plain mistakes.
        row("a log format that does not exist", |_| ours(&["paths", "--log-format", "xml"]), 2, "xml").within(10, 100),
        row("a missing plan file", |_| ours(&["apply", "--simulate", "--plan", "/nonexistent/plan.yaml", "--yes"]), 1, "cannot read --plan /nonexistent/plan.yaml").within(20, 200),
    ]
}

#[test]
fn every_bad_input_gets_its_exit_code_its_message_and_stays_within_memory_and_time() {
    let base = std::env::temp_dir().join(format!("k8s-upgrade-it-bad-input-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).unwrap();
    let time = gnu_time();
    if time.is_none() {
        eprintln!("bad-input suite: GNU time is not installed; peak memory is not measured");
    }
    let has_kubectl = crate::sim::kubectl_available("bad-input suite rows that drive kubectl");
    let rows = rows();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    // A few at a time: most rows wait on timers, not on the CPU.
    std::thread::scope(|scope| {
        for _ in 0..3 {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(r) = rows.get(i) else { return };
                    if r.kubectl && !has_kubectl {
                        continue;
                    }
                    let started = Instant::now();
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_row(r, i, &base, time)))
                        .unwrap_or_else(|p| {
                            Err(format!(
                                "its setup panicked: {}",
                                p.downcast_ref::<String>()
                                    .map(String::as_str)
                                    .or(p.downcast_ref::<&str>().copied())
                                    .unwrap_or("?")
                            ))
                        });
                    eprintln!(
                        "bad-input: {:>5.1}s {} {}",
                        started.elapsed().as_secs_f64(),
                        if result.is_ok() { "ok  " } else { "FAIL" },
                        r.name
                    );
                    if let Err(e) = result {
                        failures.lock().unwrap().push(format!("{}: {e}", r.name));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{} of {} rows failed:\n{}", failures.len(), rows.len(), failures.join("\n"));
    let _ = std::fs::remove_dir_all(&base);
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
