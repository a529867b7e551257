//! `--manifests` without silent loss: large inputs are read to the end, inputs over the limit
//! (files, stdin, pipes, devices) fail naming the input and the flag, skipped files are counted,
//! and duplicate keys, JSON arrays and leading `---` are read the same in every formatting.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{command, stderr};

/// A scratch directory under the temporary directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("k8s-upgrade-it-manifests-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const PLAN: [&str; 8] = ["plan", "--distro", "kubeadm", "--from", "1.21.5", "--to", "1.33", "-o"];

/// Starts `k8s-upgrade plan ... -o json` in `dir` with `args` after it.
fn spawn_plan(dir: &Path, args: &[&str], stdin: Stdio) -> Child {
    command()
        .args(PLAN)
        .arg("json")
        .args(args)
        .current_dir(dir)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run k8s-upgrade")
}

/// Waits for `child`, killing it (and failing) after `limit`: an unbounded read would hang.
fn wait_at_most(mut child: Child, limit: Duration) -> Output {
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("still running after {limit:?}: the input was not bounded");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// Runs with `input` written to stdin from a thread (it may be refused part way: a write error
/// is expected then).
fn plan_with_stdin(dir: &Path, args: &[&str], input: Vec<u8>) -> Output {
    let mut child = spawn_plan(dir, args, Stdio::piped());
    let mut pipe = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&input);
    });
    let out = wait_at_most(child, Duration::from_secs(120));
    writer.join().unwrap();
    out
}

fn plan(dir: &Path, args: &[&str]) -> Output {
    wait_at_most(spawn_plan(dir, args, Stdio::null()), Duration::from_secs(120))
}

/// `kind name document` of every object with an API_REMOVED finding (an object moved through
/// interim versions has one per hop).
fn removed(o: &Output) -> Vec<String> {
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(o)));
    let mut found: Vec<String> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "API_REMOVED")
        .map(|f| {
            format!(
                "{} {} {}",
                f["details"]["kind"].as_str().unwrap(),
                f["details"]["name"].as_str().unwrap(),
                f["evidence"]["document"]
            )
        })
        .collect();
    found.sort();
    found.dedup();
    found
}

/// About 40 MiB of current Deployments (each near 1 KiB, so far fewer documents than the
/// per-file bound) ending with one removed-API Deployment, and the number of that document.
fn forty_mib() -> (Vec<u8>, usize) {
    let mut text = String::with_capacity(41 << 20);
    let mut n = 0;
    while text.len() < 40 << 20 {
        n += 1;
        text.push_str(&format!(
            "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web-{n}\n  namespace: shop\n  labels:\n    app: web\n  annotations:\n    note: \"{}\"\nspec:\n  replicas: 3\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n      - name: web\n        image: registry.example.com/web:1.{n}\n        args: [\"--port\", \"8080\"]\n        resources:\n          requests: {{cpu: 100m, memory: 128Mi}}\n        command:\n        - /bin/sh\n        - -c\n        - |\n          exec /app/web\n",
            "padding ".repeat(70)
        ));
    }
    text.push_str("---\napiVersion: extensions/v1beta1\nkind: Deployment\nmetadata:\n  name: last\n");
    (text.into_bytes(), n + 1)
}

#[test]
fn a_40_mib_file_and_stdin_are_read_to_the_end() {
    let dir = Scratch::new("forty");
    let (text, last) = forty_mib();
    assert!(text.len() > 40 << 20 && text.len() < 64 << 20);
    std::fs::write(dir.0.join("big.yaml"), &text).unwrap();
    // Both at once: each is a few seconds in a debug build.
    let file = spawn_plan(&dir.0, &["--manifests", "big.yaml"], Stdio::null());
    let piped = plan_with_stdin(&dir.0, &["--manifests", "-"], text);
    let file = wait_at_most(file, Duration::from_secs(120));
    for (what, o) in [("file", &file), ("stdin", &piped)] {
        assert_eq!(o.status.code(), Some(3), "{what}: {}", stderr(o));
        assert_eq!(removed(o), [format!("Deployment last {last}")], "{what}");
        assert!(!stderr(o).contains("warning"), "{what}: {}", stderr(o));
    }
}

#[test]
fn an_input_over_the_limit_fails_naming_it_and_the_flag() {
    let dir = Scratch::new("limit");
    // Sparse: its size alone refuses it, before a byte is read.
    let big = std::fs::File::create(dir.0.join("huge.yaml")).unwrap();
    big.set_len((64 << 20) + 1).unwrap();
    let o = plan(&dir.0, &["--manifests", "huge.yaml"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        "error: manifest file huge.yaml has 67108865 bytes, more than the limit of 67108864 bytes (64Mi); raise it with --max-manifest-bytes (e.g. --max-manifest-bytes 65Mi)\n"
    );
    assert!(o.stdout.is_empty());

    let manifest = "apiVersion: extensions/v1beta1\nkind: Ingress\nmetadata:\n  name: shop\n".to_string()
        + &"# padding\n".repeat(200);
    std::fs::create_dir_all(dir.0.join("deploy")).unwrap();
    std::fs::write(dir.0.join("deploy/app.yaml"), &manifest).unwrap();
    let o = plan(&dir.0, &["--manifests", "deploy", "--max-manifest-bytes", "1Ki"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        format!(
            "error: manifest file deploy/app.yaml has {} bytes, more than the limit of 1024 bytes (1Ki); raise it with --max-manifest-bytes (e.g. --max-manifest-bytes 3Ki)\n",
            manifest.len()
        )
    );
    let o =
        plan_with_stdin(&dir.0, &["--manifests", "-", "--max-manifest-bytes", "1024"], manifest.clone().into_bytes());
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        "error: stdin has more than 1024 bytes, the limit (1Ki); raise it with --max-manifest-bytes (e.g. --max-manifest-bytes 2Ki)\n"
    );
    // Raised, both read.
    let o = plan(&dir.0, &["--manifests", "deploy", "--max-manifest-bytes", "3Ki"]);
    assert_eq!((o.status.code(), removed(&o)), (Some(3), vec!["Ingress shop 1".to_string()]), "{}", stderr(&o));
    let o = plan_with_stdin(&dir.0, &["--manifests", "-", "--max-manifest-bytes", "3Ki"], manifest.into_bytes());
    assert_eq!((o.status.code(), removed(&o)), (Some(3), vec!["Ingress shop 1".to_string()]), "{}", stderr(&o));
    // A bad value names itself and what is accepted.
    let o = plan(&dir.0, &["--manifests", "-", "--max-manifest-bytes", "64MB"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("'64MB' is not a byte count") && stderr(&o).contains("64Mi"), "{}", stderr(&o));
}

#[test]
fn an_endless_input_is_refused_at_the_limit() {
    let dir = Scratch::new("endless");
    let expected = |what: &str| {
        format!(
            "error: {what} more than 65536 bytes, the limit (64Ki); raise it with --max-manifest-bytes (e.g. --max-manifest-bytes 128Ki)\n"
        )
    };
    let limit = ["--max-manifest-bytes", "64Ki"];
    let zero = std::fs::File::open("/dev/zero").unwrap();
    let o = wait_at_most(
        spawn_plan(&dir.0, &[&["--manifests", "-"][..], &limit].concat(), zero.into()),
        Duration::from_secs(30),
    );
    assert_eq!((o.status.code(), stderr(&o)), (Some(1), expected("stdin has")));
    let o = plan(&dir.0, &[&["--manifests", "/dev/zero"][..], &limit].concat());
    assert_eq!((o.status.code(), stderr(&o)), (Some(1), expected("manifest file /dev/zero has")));

    // A FIFO fed without end, as `--manifests <(generator)` would be.
    let fifo = dir.0.join("feed.yaml");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let feed = fifo.clone();
    let writer = std::thread::spawn(move || {
        let mut w = std::fs::OpenOptions::new().write(true).open(feed).unwrap();
        let chunk = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n---\n".repeat(64);
        // Ends when the reader goes away (a broken pipe).
        while w.write_all(chunk.as_bytes()).is_ok() {}
    });
    let o = plan(&dir.0, &[&["--manifests", "feed.yaml"][..], &limit].concat());
    assert_eq!((o.status.code(), stderr(&o)), (Some(1), expected("manifest file feed.yaml has")));
    writer.join().unwrap();
}

#[test]
fn a_directory_scan_counts_the_files_it_skipped() {
    let dir = Scratch::new("skipped");
    let d = dir.0.join("deploy");
    std::fs::create_dir_all(d.join("docs")).unwrap();
    std::fs::write(d.join("app.yaml"), "apiVersion: extensions/v1beta1\nkind: Ingress\nmetadata:\n  name: shop\n")
        .unwrap();
    std::fs::write(d.join("job.yml"), "apiVersion: batch/v1beta1\nkind: CronJob\nmetadata:\n  name: report\n").unwrap();
    // Not read, but counted: a manifest under the wrong name is visible in the summary.
    std::fs::write(d.join("README.md"), "apiVersion: policy/v1beta1\nkind: PodSecurityPolicy\n").unwrap();
    std::fs::write(d.join("docs/psp.yaml.txt"), "apiVersion: policy/v1beta1\nkind: PodSecurityPolicy\n").unwrap();
    std::fs::write(d.join("Chart.lock"), "").unwrap();
    let o = plan(&dir.0, &["--manifests", "deploy"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(removed(&o), ["CronJob report 1", "Ingress shop 1"]);
    assert_eq!(stderr(&o), "--manifests deploy: 2 files read (2 objects), 3 skipped (not .yaml/.yml/.json)\n");
}

#[test]
fn arrays_leading_markers_and_duplicate_keys_read_alike_in_every_format() {
    let dir = Scratch::new("formats");
    let d = dir.0.join("deploy");
    std::fs::create_dir_all(&d).unwrap();
    // Helm's output: a leading `---` and a comment before each object.
    std::fs::write(
        d.join("helm.yaml"),
        "---\n# Source: chart/templates/ingress.yaml\napiVersion: extensions/v1beta1\nkind: Ingress\nmetadata:\n  name: shop\n---  # Source: chart/templates/pdb.yaml\n\napiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata:\n  name: web\n",
    )
    .unwrap();
    std::fs::write(
        d.join("array.json"),
        r#"[{"apiVersion": "batch/v1beta1", "kind": "CronJob", "metadata": {"name": "report"}},
 {"apiVersion": "flowcontrol.apiserver.k8s.io/v1beta3", "kind": "FlowSchema", "metadata": {"name": "fs"}}]"#,
    )
    .unwrap();
    // The same duplicated key in block and flow style: both rejected, as kubectl rejects them.
    std::fs::write(
        d.join("dup.yaml"),
        "apiVersion: policy/v1beta1\nkind: PodSecurityPolicy\nmetadata:\n  name: block\nspec:\n  privileged: false\n  privileged: true\n---\n{apiVersion: policy/v1beta1, kind: PodSecurityPolicy, metadata: {name: flow}, spec: {privileged: false, privileged: true}}\n",
    )
    .unwrap();
    let o = plan(&dir.0, &["--manifests", "deploy"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(removed(&o), ["CronJob report 1", "FlowSchema fs 1", "Ingress shop 1", "PodDisruptionBudget web 2"]);
    let reason = "kubectl rejects such a manifest, so it is skipped: remove one of them";
    assert_eq!(
        stderr(&o),
        format!(
            "--manifests deploy: 3 files read (4 objects)\n\
             warning: deploy/dup.yaml: document 1 defines the key \"privileged\" twice (line 7); {reason}\n\
             warning: deploy/dup.yaml: document 2 defines the key \"privileged\" twice (line 9); {reason}\n"
        )
    );
}

/// D21, D22, D23 from the adversarial review: a CronJob whose quoted note holds `kind: ConfigMap`
/// at column 0, a List inside a List, and a symlinked directory (with a loop beside it) each hid
/// a removed API.
#[test]
fn quoted_kinds_nested_lists_and_symlinked_directories_hide_no_removed_api() {
    let dir = Scratch::new("hidden");
    let d = dir.0.join("deploy");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::create_dir_all(dir.0.join("shared")).unwrap();
    std::fs::write(
        d.join("fn-quoted.yaml"),
        "apiVersion: batch/v1beta1\nkind: CronJob\nnote: \"text\nkind: ConfigMap\"\nmetadata: {name: hidden}\n",
    )
    .unwrap();
    std::fs::write(
        d.join("nested-list.yaml"),
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: List\n  items:\n  - apiVersion: batch/v1beta1\n    kind: CronJob\n    metadata:\n      name: inner\n",
    )
    .unwrap();
    std::fs::write(
        dir.0.join("shared/pdb.yaml"),
        "apiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata:\n  name: linked\n",
    )
    .unwrap();
    std::os::unix::fs::symlink("../shared", d.join("shared")).unwrap();
    std::os::unix::fs::symlink(".", d.join("loop")).unwrap();
    let o = plan(&dir.0, &["--manifests", "deploy"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(removed(&o), ["CronJob hidden 1", "CronJob inner 1", "PodDisruptionBudget linked 1"]);
    assert_eq!(
        stderr(&o),
        "--manifests deploy: 3 files read (3 objects), 1 symlinked directory followed\n\
         warning: deploy/loop: a symlink leads to deploy, which this scan reads already (a loop, or a second way in); not read again\n"
    );
}
