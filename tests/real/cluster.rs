//! A real control plane for one test: `e2e/control-plane.sh up` in a private directory, `down`
//! when the value drops. The binaries are built beforehand (`.ci/run` does it); without them a
//! test is skipped with the reason printed, or fails under `K8S_UPGRADE_REQUIRE_REAL=1`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The releases of `e2e/versions`, oldest first: start, waypoint, target.
pub fn versions() -> Vec<String> {
    include_str!("../../e2e/versions")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/control-plane.sh")
}

/// True when every release in `needed` is built; otherwise prints why `test` is skipped, or
/// panics under `K8S_UPGRADE_REQUIRE_REAL=1`.
pub fn available(test: &str, needed: &[String]) -> bool {
    for version in needed {
        let o = Command::new(script()).args(["status", version]).output().expect("run control-plane.sh status");
        if !o.status.success() {
            let reason = String::from_utf8_lossy(&o.stderr).trim().to_string();
            if std::env::var("K8S_UPGRADE_REQUIRE_REAL").as_deref() == Ok("1") {
                panic!("{test}: the real control plane is required (K8S_UPGRADE_REQUIRE_REAL=1): {reason}");
            }
            eprintln!("skipping {test}: {reason} (set K8S_UPGRADE_REQUIRE_REAL=1 to fail instead)");
            return false;
        }
    }
    true
}

/// The directory of a built release's binaries.
pub fn bin_dir(version: &str) -> PathBuf {
    let o = Command::new(script()).args(["status", version]).output().expect("run control-plane.sh status");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())
}

/// A private scratch directory (created, never reused).
pub fn scratch(tag: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "k8s-upgrade-real-{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

pub struct RealCluster {
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    /// Held while the cluster runs: one control plane at a time on the machine.
    _machine: MutexGuard<'static, ()>,
}

/// The machine: one test's control plane at a time. With three control planes rolling nodes
/// on two cores, a forecast's run measured three times as long as alone, and the apply test's
/// watcher saw kwok's deletions by name race the StatefulSet controller past its tolerance.
static MACHINE: Mutex<()> = Mutex::new(());

/// How a test wants its cluster.
pub struct Options<'a> {
    pub version: &'a str,
    pub workers: usize,
    /// `--runtime-config` of the apiserver: beta APIs that are off by default.
    pub runtime_config: &'a str,
    /// `--feature-gates` of the apiserver.
    pub feature_gates: &'a str,
    /// The workers' kubelet version (default: the control plane's).
    pub kubelet: &'a str,
    /// The apiserver's `--etcd-compaction-interval` (default 5m).
    pub compaction: &'a str,
    /// An audit log of the admin's requests, in `logs/audit.log` of the cluster's directory.
    pub audit: bool,
}

impl Default for Options<'static> {
    fn default() -> Self {
        Options {
            version: "",
            workers: 6,
            runtime_config: "",
            feature_gates: "",
            kubelet: "",
            compaction: "5m",
            audit: false,
        }
    }
}

impl RealCluster {
    pub fn up(tag: &str, options: &Options) -> RealCluster {
        // A test that failed while holding it poisons nothing the others rely on.
        let machine = MACHINE.lock().unwrap_or_else(|e| e.into_inner());
        let dir = scratch(tag);
        let o = Command::new(script())
            .args(["up", options.version, dir.to_str().unwrap()])
            .env("K8S_UPGRADE_E2E_NODES", options.workers.to_string())
            .env("K8S_UPGRADE_E2E_RUNTIME_CONFIG", options.runtime_config)
            .env("K8S_UPGRADE_E2E_FEATURE_GATES", options.feature_gates)
            .env("K8S_UPGRADE_E2E_COMPACTION_INTERVAL", options.compaction)
            .env("K8S_UPGRADE_E2E_AUDIT", if options.audit { "1" } else { "0" })
            .env(
                "K8S_UPGRADE_E2E_KUBELET_VERSION",
                if options.kubelet.is_empty() { options.version } else { options.kubelet },
            )
            .output()
            .expect("run control-plane.sh up");
        let cluster = RealCluster { kubeconfig: dir.join("kubeconfig"), dir, _machine: machine };
        assert!(o.status.success(), "control-plane.sh up failed:\n{}", String::from_utf8_lossy(&o.stderr));
        cluster
    }

    /// The binaries the control plane runs now (they change with `upgrade`).
    pub fn bin(&self) -> PathBuf {
        let state = std::fs::read_to_string(self.dir.join("state")).expect("read state");
        PathBuf::from(state.lines().rev().find_map(|l| l.strip_prefix("BIN=")).expect("BIN in state"))
    }

    /// `kubectl` of the control plane's own version, as the admin (bound through a group, as
    /// kubeadm's admin.conf).
    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new(self.bin().join("kubectl"))
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .env("HOME", &self.dir)
            .output()
            .expect("run kubectl")
    }

    /// `kubectl`, which must succeed; its stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let o = self.kubectl(args);
        assert!(o.status.success(), "kubectl {}: {}", args.join(" "), String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    pub fn apply_file(&self, file: &Path) {
        self.kubectl_ok(&["apply", "-f", file.to_str().unwrap()]);
    }

    /// A client certificate for `name` bound to nothing: its kubeconfig.
    pub fn user(&self, name: &str) -> PathBuf {
        let o = Command::new(script()).args(["user", self.dir.to_str().unwrap(), name]).output().expect("user");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())
    }

    /// The argv template `apply --upgrader command` runs for each node.
    pub fn upgrade_command(&self) -> String {
        format!("{} upgrade-node {} {{node}} {{role}} {{version}}", script().display(), self.dir.display())
    }

    /// Waits until `check` holds (polled), or panics with `what`.
    pub fn wait_for(&self, what: &str, timeout: Duration, mut check: impl FnMut(&RealCluster) -> bool) {
        let deadline = Instant::now() + timeout;
        while !check(self) {
            assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Every Deployment and StatefulSet has all its replicas ready and up to date.
    pub fn workloads_settled(&self) -> bool {
        let out = self.kubectl(&[
            "get",
            "deployments,statefulsets",
            "-A",
            "-o",
            "jsonpath={range .items[*]}{.spec.replicas} {.status.readyReplicas} {.status.updatedReplicas}{\"\\n\"}{end}",
        ]);
        out.status.success()
            && String::from_utf8_lossy(&out.stdout).lines().all(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                f.len() == 3 && f[0] == f[1] && f[0] == f[2]
            })
    }

    /// The kubelet version of every node, by name.
    pub fn kubelets(&self) -> Vec<(String, String)> {
        self.kubectl_ok(&[
            "get",
            "nodes",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.status.nodeInfo.kubeletVersion}{\"\\n\"}{end}",
        ])
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(n, v)| (n.to_string(), v.to_string())))
        .collect()
    }
}

impl Drop for RealCluster {
    fn drop(&mut self) {
        let _ = Command::new(script()).args(["down", self.dir.to_str().unwrap()]).output();
        if std::thread::panicking() {
            eprintln!("the control plane's logs and state are kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The built binary with no inherited K8S_UPGRADE_* or KUBECONFIG settings, and a private HOME
/// (journal and lock state stay inside the test's directory).
pub fn tool(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_k8s-upgrade"));
    for (k, _) in std::env::vars() {
        if k.starts_with("K8S_UPGRADE_") || k == "KUBECONFIG" || k.starts_with("XDG_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("HOME", home).env("NO_COLOR", "1");
    cmd
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
