//! The simulator end to end: real kubectl, kube-rs's watcher and typed clients, and the oracle.
//!
//! Tests that need kubectl skip with a printed reason when it is absent, and fail instead under
//! `K8S_UPGRADE_REQUIRE_KUBECTL=1` (CI). Each test gets a fresh HOME, because kubectl caches
//! discovery per host and port.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_upgrade::catalog::Catalog;
use k8s_upgrade::sim::{self, Running, Scenario, SimOptions};
use serde_json::{Value, json};

/// True when kubectl can run; otherwise prints why the test is skipped, or panics under
/// `K8S_UPGRADE_REQUIRE_KUBECTL=1`.
pub fn kubectl_available(test: &str) -> bool {
    let ok =
        Command::new("kubectl").args(["version", "--client"]).output().map(|o| o.status.success()).unwrap_or(false);
    if !ok {
        if std::env::var("K8S_UPGRADE_REQUIRE_KUBECTL").as_deref() == Ok("1") {
            panic!("{test}: kubectl is required (K8S_UPGRADE_REQUIRE_KUBECTL=1) but `kubectl version --client` failed");
        }
        eprintln!("skipping {test}: kubectl is not installed (set K8S_UPGRADE_REQUIRE_KUBECTL=1 to fail instead)");
    }
    ok
}

/// A simulator running on its own runtime, with a kubeconfig and a private HOME for kubectl.
pub struct Cluster {
    pub rt: tokio::runtime::Runtime,
    pub running: Option<Running>,
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    /// TLS for raw requests: trusts the simulator's CA and presents the admin's certificate.
    pub tls: Arc<rustls::ClientConfig>,
}

/// A rustls client that trusts `running`'s CA and authenticates with `cred`'s certificate (or
/// with none).
pub fn tls_client(running: &Running, cred: Option<(&str, &[String])>) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    // Over plain HTTP there is no CA: the config is never used to connect.
    if let Some(pem) = running.ca_pem() {
        roots.add(CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()).unwrap();
    }
    let cred = cred.filter(|_| running.ca_pem().is_some());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match cred {
        Some((user, groups)) => {
            let c = running.issue_client_cert(user, groups).unwrap();
            let cert = CertificateDer::from_pem_slice(c.cert_pem.as_bytes()).unwrap();
            let key = PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes()).unwrap();
            builder.with_client_auth_cert(vec![cert], key).unwrap()
        }
        None => builder.with_no_client_auth(),
    })
}

/// One HTTP/1.0 request over TLS with `config`, with extra header lines; returns (status, body).
pub fn https_request(
    addr: std::net::SocketAddr,
    config: Arc<rustls::ClientConfig>,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> (u16, String) {
    let raw = https_raw(addr, config, method, path, headers, body);
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, body.to_string())
}

/// The whole answer (status line, headers, body) of one HTTP/1.0 request over TLS.
pub fn https_raw(
    addr: std::net::SocketAddr,
    config: Arc<rustls::ClientConfig>,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> String {
    let name = rustls::pki_types::ServerName::from(addr.ip());
    let conn = rustls::ClientConnection::new(config, name).unwrap();
    let sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    write!(tls, "{method} {path} HTTP/1.0\r\nHost: sim\r\n{headers}Content-Length: {}\r\n\r\n{body}", body.len())
        .unwrap();
    let mut raw = Vec::new();
    // A server that closes without close_notify ends the stream with UnexpectedEof: what arrived
    // before it is the whole answer of an HTTP/1.0 exchange.
    if let Err(e) = tls.read_to_end(&mut raw) {
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "{method} {path}: {e}");
    }
    String::from_utf8_lossy(&raw).into_owned()
}

static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Cluster {
    pub fn start(scenario: Scenario, time_scale: f64) -> Cluster {
        Cluster::start_with(scenario, SimOptions { time_scale, ..Default::default() })
    }

    pub fn start_with(scenario: Scenario, options: SimOptions) -> Cluster {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let catalog = Arc::new(Catalog::embedded().unwrap());
        let running = rt.block_on(sim::start(scenario, catalog, options)).expect("simulator starts");
        let dir = std::env::temp_dir().join(format!(
            "k8s-upgrade-it-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("home")).unwrap();
        let kubeconfig = dir.join("kubeconfig");
        running.write_kubeconfig(&kubeconfig).unwrap();
        let tls = tls_client(&running, Some((sim::ADMIN_USER, &[sim::ADMIN_GROUP.to_string()])));
        Cluster { rt, running: Some(running), dir, kubeconfig, tls }
    }

    pub fn builtin(name: &str, time_scale: f64) -> Cluster {
        Cluster::start(Scenario::load(name).unwrap(), time_scale)
    }

    pub fn sim(&self) -> &sim::Sim {
        &self.running.as_ref().unwrap().sim
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.running.as_ref().unwrap().addr
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new("kubectl")
            .args(args)
            .env("HOME", self.dir.join("home"))
            .env("KUBECONFIG", &self.kubeconfig)
            .env_remove("KUBECTL_EXTERNAL_DIFF")
            .output()
            .expect("run kubectl")
    }

    /// A kubectl call that must succeed; returns stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let o = self.kubectl(args);
        assert!(
            o.status.success(),
            "kubectl {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&o.stderr),
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// An HTTP/1.0 request to the simulator over TLS, as the admin; returns (status, body).
    pub fn http(&self, method: &str, path: &str, content_type: &str, body: &str) -> (u16, String) {
        https_request(self.addr(), self.tls.clone(), method, path, &format!("Content-Type: {content_type}\r\n"), body)
    }

    pub fn get_json(&self, path: &str) -> Value {
        let (status, body) = self.http("GET", path, "application/json", "");
        assert!(status < 300, "GET {path}: {status} {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Creates an RBAC object (Role, ClusterRole or a binding) as the admin.
    pub fn create_rbac(&self, d: &Value) {
        let plural = match d["kind"].as_str().unwrap() {
            "ClusterRole" => "clusterroles",
            "ClusterRoleBinding" => "clusterrolebindings",
            "Role" => "roles",
            _ => "rolebindings",
        };
        let path = match d.pointer("/metadata/namespace").and_then(Value::as_str) {
            Some(ns) => format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/{plural}"),
            None => format!("/apis/rbac.authorization.k8s.io/v1/{plural}"),
        };
        let (status, body) = self.http("POST", &path, "application/json", &d.to_string());
        assert_eq!(status, 201, "{body}");
    }

    /// After a finished run: no budget violated, no pod lost, every node Ready and schedulable
    /// at the `minor` kubelet (e.g. "1.25").
    pub fn assert_finished_clean(&self, minor: &str) {
        let stats = self.stats();
        assert_eq!(stats["pdbViolations"], 0, "{stats}");
        assert_eq!(stats["podsLost"], 0, "{stats}");
        for n in stats["nodes"].as_array().unwrap() {
            assert!(n["kubeletVersion"].as_str().unwrap().starts_with(&format!("v{minor}.")), "{n}");
            assert_eq!(n["schedulable"], true, "{n}");
            assert_eq!(n["ready"], true, "{n}");
        }
    }

    pub fn stats(&self) -> Value {
        self.get_json("/sim/stats")
    }

    pub fn kube_client(&self) -> kube::Client {
        let text = std::fs::read_to_string(&self.kubeconfig).unwrap();
        let kc = kube::config::Kubeconfig::from_yaml(&text).unwrap();
        self.rt.block_on(async {
            let mut config =
                kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default()).await.unwrap();
            // As the tool builds its client: a 429 from a budget is the caller's to handle.
            config.default_retry = false;
            kube::Client::try_from(config).unwrap()
        })
    }

    /// Waits until `f` holds, polling every 50 ms, or panics with `what` after `timeout`.
    pub fn wait_for(&self, what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
        let start = Instant::now();
        while !f() {
            assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The credentials inside a kubeconfig file, as they could leak: tokens, and client keys both
/// base64 (as written) and as the PEM body lines they decode to.
pub fn credentials_in(kubeconfig: &std::path::Path) -> Vec<String> {
    use base64::Engine;
    let text = std::fs::read_to_string(kubeconfig).unwrap_or_default();
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        let field = |k: &str| line.strip_prefix(k).map(|v| v.trim().trim_matches(['"', ',']).to_string());
        if let Some(t) = field("token:").or_else(|| field("\"token\":")) {
            out.push(t);
        }
        if let Some(data) = field("client-key-data:").or_else(|| field("\"client-key-data\":")) {
            if let Ok(pem) = base64::engine::general_purpose::STANDARD.decode(&data) {
                let pem = String::from_utf8_lossy(&pem).into_owned();
                out.extend(pem.lines().filter(|l| l.len() > 20 && !l.starts_with("-----")).map(str::to_string));
            }
            out.push(data);
        }
    }
    out.retain(|s| s.len() >= 8);
    out
}

impl Cluster {
    /// Fails if a credential of any kubeconfig in the cluster's dir appears in `texts`.
    pub fn assert_no_credentials(&self, texts: &[&str]) {
        let secrets = self.credentials();
        for (i, t) in texts.iter().enumerate() {
            assert!(!secrets.iter().any(|s| t.contains(s.as_str())), "a kubeconfig credential leaked into output {i}");
        }
    }

    fn credentials(&self) -> Vec<String> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir).into_iter().flatten().filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == "kubeconfig" || name.ends_with(".kubeconfig") {
                out.extend(credentials_in(&entry.path()));
            }
        }
        out
    }

    /// Journals, events files and saved outputs the test left in the cluster's dir (and in the
    /// state directory under its HOME, where a default journal goes).
    fn written_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut dirs = vec![self.dir.clone(), self.dir.join("home/.local/state/k8s-upgrade")];
        while let Some(d) = dirs.pop() {
            for entry in std::fs::read_dir(&d).into_iter().flatten().filter_map(Result::ok) {
                let name = entry.file_name().to_string_lossy().into_owned();
                if [".json", ".jsonl", ".out", ".log", ".yaml"].iter().any(|e| name.ends_with(e)) {
                    out.push(entry.path());
                }
            }
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            // Controllers that panicked fail the test that ran against them.
            if let Err(e) = self.rt.block_on(r.shutdown())
                && !std::thread::panicking()
            {
                panic!("{e}");
            }
        }
        // Every journal, events file and saved output of every test is searched for the
        // credentials its kubeconfigs carry.
        let leaked: Vec<String> = if std::thread::panicking() {
            vec![]
        } else {
            let secrets = self.credentials();
            self.written_files()
                .into_iter()
                .filter(|f| {
                    let text = std::fs::read_to_string(f).unwrap_or_default();
                    secrets.iter().any(|s| text.contains(s.as_str()))
                })
                .map(|f| f.display().to_string())
                .collect()
        };
        let _ = std::fs::remove_dir_all(&self.dir);
        assert!(leaked.is_empty(), "a kubeconfig credential leaked into {leaked:?}");
    }
}

/// A small kubeadm scenario at `version`, with one old-API object of each kind the tests check.
pub fn small(version: &str) -> Scenario {
    Scenario::parse(
        "small",
        &format!(
            r#"
name: small
cluster: {{ version: "{version}", distro: kubeadm }}
nodePools:
  - {{ name: cp, count: 1, roles: [control-plane], taints: [{{ key: node-role.kubernetes.io/control-plane, effect: NoSchedule }}] }}
  - {{ name: w, count: 3, roles: [worker] }}
addons:
  - {{ name: kube-proxy, version: "{version}" }}
workloads:
  - {{ kind: Deployment, name: web, replicas: 3, pdb: {{ maxUnavailable: 1 }} }}
"#
        ),
    )
    .unwrap()
}

fn node_of(c: &Cluster, ns: &str, prefix: &str) -> String {
    let pods = c.get_json(&format!("/api/v1/namespaces/{ns}/pods"));
    pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["metadata"]["name"].as_str().unwrap().starts_with(prefix))
        .unwrap()["spec"]["nodeName"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn kubectl_get_nodes_shows_status_roles_age_version() {
    if !kubectl_available("kubectl_get_nodes_shows_status_roles_age_version") {
        return;
    }
    let c = Cluster::builtin("demo", 0.05);
    let out = c.kubectl_ok(&["get", "nodes"]);
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "STATUS", "ROLES", "AGE", "VERSION"], "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("cp-1 ")
            && l.contains("Ready")
            && l.contains("control-plane")
            && l.contains("v1.24.17")),
        "{out}"
    );
    assert!(out.lines().any(|l| l.starts_with("pool-b-1 ") && l.contains("v1.23.17")), "{out}");
    assert_eq!(out.lines().count(), 10, "{out}");
    let wide = c.kubectl_ok(&["get", "nodes", "-o", "wide"]);
    assert!(
        wide.contains("INTERNAL-IP") && wide.contains("CONTAINER-RUNTIME") && wide.contains("containerd://"),
        "{wide}"
    );

    // cordon / uncordon, and the Table status follows.
    assert!(c.kubectl_ok(&["cordon", "pool-a-2"]).contains("node/pool-a-2 cordoned"));
    assert!(c.kubectl_ok(&["cordon", "pool-a-2"]).contains("already cordoned"));
    let out = c.kubectl_ok(&["get", "node", "pool-a-2"]);
    assert!(out.contains("Ready,SchedulingDisabled"), "{out}");
    assert!(c.kubectl_ok(&["uncordon", "pool-a-2"]).contains("node/pool-a-2 uncordoned"));
    let node = c.get_json("/api/v1/nodes/pool-a-2");
    assert!(node["spec"].get("unschedulable").is_none(), "null removes the field: {node}");
    let o = c.kubectl(&["get", "node", "nope"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains(r#"nodes "nope" not found"#));
}

#[test]
fn kubectl_get_pods_pdbs_version_and_chunked_lists() {
    if !kubectl_available("kubectl_get_pods_pdbs_version_and_chunked_lists") {
        return;
    }
    let c = Cluster::builtin("demo", 0.05);
    let out = c.kubectl_ok(&["get", "pods", "-A"]);
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"], "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("kube-system") && l.contains("kube-apiserver-cp-1") && l.contains("Running")),
        "{out}"
    );
    assert!(out.lines().any(|l| l.starts_with("shop") && l.contains("web-")), "{out}");
    // A tiny chunk size forces many continue pages; the total must not change.
    let chunked = c.kubectl_ok(&["get", "pods", "-A", "--chunk-size=4", "-o", "name"]);
    let plain = c.kubectl_ok(&["get", "pods", "-A", "-o", "name"]);
    assert_eq!(chunked.lines().count(), plain.lines().count());
    assert!(plain.lines().count() > 30);

    let pdbs = c.kubectl_ok(&["get", "pdb", "-A"]);
    assert!(pdbs.contains("ALLOWED DISRUPTIONS") && pdbs.contains("web-pdb") && pdbs.contains("db-pdb"), "{pdbs}");

    let v: Value = serde_json::from_str(&c.kubectl_ok(&["version", "-o", "json"])).unwrap();
    assert_eq!(v["serverVersion"]["minor"], "24");
    assert_eq!(v["serverVersion"]["gitVersion"], "v1.24.17");
    assert_eq!(c.kubectl_ok(&["get", "--raw", "/readyz"]).trim(), "ok");

    // Server-side label and field selectors.
    let web = c.kubectl_ok(&["get", "pods", "-n", "shop", "-l", "app in (web)", "-o", "name"]);
    assert_eq!(web.lines().count(), 3, "{web}");
    let on_node = c.kubectl_ok(&["get", "pods", "-A", "--field-selector", "spec.nodeName=cp-1", "-o", "name"]);
    let mut want: Vec<String> =
        c.sim().store.pods_on_node("cp-1").iter().map(|p| format!("pod/{}", p.name())).collect();
    let mut got: Vec<String> = on_node.lines().map(str::to_string).collect();
    want.sort();
    got.sort();
    assert_eq!(got, want);
    assert!(got.iter().any(|p| p == "pod/kube-apiserver-cp-1"));
}

#[test]
fn api_versions_follow_the_simulated_version() {
    if !kubectl_available("api_versions_follow_the_simulated_version") {
        return;
    }
    let old = Cluster::start(small("1.24.17"), 0.05);
    let versions = old.kubectl_ok(&["api-versions"]);
    for gv in [
        "policy/v1beta1",
        "batch/v1beta1",
        "autoscaling/v2beta2",
        "flowcontrol.apiserver.k8s.io/v1beta2",
        "policy/v1",
        "apps/v1",
    ] {
        assert!(versions.lines().any(|l| l == gv), "1.24 serves {gv}: {versions}");
    }
    let resources = old.kubectl_ok(&["api-resources"]);
    assert!(resources.contains("poddisruptionbudgets") && resources.contains("pdb"), "{resources}");
    // api-resources shows each group's preferred version: on 1.24 flowcontrol's is v1beta2.
    assert!(
        resources.lines().any(|l| l.starts_with("flowschemas") && l.contains("flowcontrol.apiserver.k8s.io/v1beta2")),
        "{resources}"
    );
    // A request to a deprecated version shows up in the apiserver metric.
    old.kubectl_ok(&["get", "--raw", "/apis/policy/v1beta1/poddisruptionbudgets"]);
    let metrics = old.kubectl_ok(&["get", "--raw", "/metrics"]);
    assert!(
        metrics.contains(r#"apiserver_requested_deprecated_apis{group="policy",removed_release="1.25",resource="poddisruptionbudgets",subresource="",version="v1beta1"} 1"#),
        "{metrics}"
    );
    assert!(!metrics.contains(r#"group="batch""#), "only requested versions count: {metrics}");

    let new = Cluster::start(small("1.25.16"), 0.05);
    let versions = new.kubectl_ok(&["api-versions"]);
    for gone in ["policy/v1beta1", "batch/v1beta1"] {
        assert!(!versions.lines().any(|l| l == gone), "1.25 no longer serves {gone}: {versions}");
    }
    assert!(versions.lines().any(|l| l == "autoscaling/v2beta2"), "removed only in 1.26: {versions}");
    let o = new.kubectl(&["get", "--raw", "/apis/policy/v1beta1/poddisruptionbudgets"]);
    assert!(!o.status.success());

    // At 1.29 flowcontrol v1beta2 is gone and v1 is preferred.
    let newer = Cluster::start(small("1.29.14"), 0.05);
    let resources = newer.kubectl_ok(&["api-resources"]);
    assert!(
        resources.lines().any(|l| l.starts_with("flowschemas") && l.contains("flowcontrol.apiserver.k8s.io/v1 ")),
        "{resources}"
    );
    assert!(!newer.kubectl_ok(&["api-versions"]).lines().any(|l| l == "flowcontrol.apiserver.k8s.io/v1beta2"));
}

#[test]
fn kubectl_drain_evicts_and_replacements_run_elsewhere() {
    if !kubectl_available("kubectl_drain_evicts_and_replacements_run_elsewhere") {
        return;
    }
    let c = Cluster::builtin("demo", 0.05);
    // Pick a worker without the bare pod (kubectl refuses those without --force).
    let bare = node_of(&c, "tools", "debug-shell");
    let node = ["pool-a-1", "pool-a-2", "pool-a-3"].into_iter().find(|n| *n != bare).unwrap();
    let before: Vec<String> = c.sim().store.pods_on_node(node).iter().map(|p| p.name().to_string()).collect();
    let o = c.kubectl(&["drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=60s"]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "drain failed: {}\n{stdout}", String::from_utf8_lossy(&o.stderr));
    assert!(
        stdout.contains(&format!("node/{node} cordoned")) && stdout.contains(&format!("node/{node} drained")),
        "{stdout}"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("ignoring DaemonSet-managed Pods"));
    // Only DaemonSet pods stay; every workload is back to its replicas, Running on other nodes.
    let left: Vec<String> = c.sim().store.pods_on_node(node).iter().map(|p| p.name().to_string()).collect();
    assert!(left.iter().all(|p| p.starts_with("kube-proxy-")), "left on {node}: {left:?} (before: {before:?})");
    c.wait_for("replacements Running", Duration::from_secs(20), || {
        let pods = c.get_json("/api/v1/namespaces/shop/pods");
        let items = pods["items"].as_array().unwrap().clone();
        items.iter().filter(|p| p["metadata"]["name"].as_str().unwrap().starts_with("web-")).count() == 3
            && items.iter().all(|p| {
                p["status"]["phase"] == "Running"
                    && p["spec"]["nodeName"] != node
                    && p["metadata"].get("deletionTimestamp").is_none()
            })
    });
    let stats = c.stats();
    assert_eq!(stats["pdbViolations"], 0, "{stats}");
    assert!(stats["evictions"].as_u64().unwrap() >= 1, "{stats}");
    let node_doc = c.get_json(&format!("/api/v1/nodes/{node}"));
    assert_eq!(node_doc["spec"]["unschedulable"], true);
}

#[test]
fn kubectl_drain_stops_on_a_budget_that_never_allows_disruption() {
    if !kubectl_available("kubectl_drain_stops_on_a_budget_that_never_allows_disruption") {
        return;
    }
    let c = Cluster::builtin("blocked", 0.05);
    let node = node_of(&c, "payments", "ledger-");
    let o = c.kubectl(&["drain", &node, "--ignore-daemonsets", "--timeout=4s"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Cannot evict pod as it would violate the pod's disruption budget."), "{stderr}");
    assert!(stderr.contains("global timeout reached: 4s"), "{stderr}");
    let stats = c.stats();
    assert!(stats["pdb429"].as_u64().unwrap() >= 1, "{stats}");
    assert_eq!(stats["pdbViolations"], 0);
}

#[test]
fn eviction_answers_and_oracle_counts() {
    let c = Cluster::builtin("blocked", 0.05);
    let pods = c.get_json("/api/v1/namespaces/payments/pods?labelSelector=app%3Dledger");
    let ledger = pods["items"][0]["metadata"]["name"].as_str().unwrap().to_string();
    let eviction = json!({"kind": "Eviction", "apiVersion": "policy/v1", "metadata": {"name": ledger, "namespace": "payments"}, "deleteOptions": {}});
    let (status, body) = c.http(
        "POST",
        &format!("/api/v1/namespaces/payments/pods/{ledger}/eviction"),
        "application/json",
        &eviction.to_string(),
    );
    assert_eq!(status, 429, "{body}");
    let b: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(b["reason"], "TooManyRequests");
    assert_eq!(b["details"]["causes"][0]["reason"], "DisruptionBudget");
    assert!(
        b["details"]["causes"][0]["message"]
            .as_str()
            .unwrap()
            .contains("The disruption budget ledger-strict needs 2 healthy pods and has 2 currently"),
        "{body}"
    );

    // A second budget over the same pods: the eviction subresource refuses with 500.
    let extra = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "overlap"}, "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "ledger"}}}});
    let (status, _) = c.http(
        "POST",
        "/apis/policy/v1/namespaces/payments/poddisruptionbudgets",
        "application/json",
        &extra.to_string(),
    );
    assert_eq!(status, 201);
    let (status, body) = c.http(
        "POST",
        &format!("/api/v1/namespaces/payments/pods/{ledger}/eviction"),
        "application/json",
        &eviction.to_string(),
    );
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("more than one PodDisruptionBudget"));

    // Dry-run eviction of a pod whose budget allows one: 201, and nothing changes.
    let front =
        c.get_json("/api/v1/namespaces/payments/pods?labelSelector=app%3Dfrontend")["items"][0]["metadata"]["name"]
            .as_str()
            .unwrap()
            .to_string();
    let dry = json!({"kind": "Eviction", "apiVersion": "policy/v1", "metadata": {"name": front, "namespace": "payments"}, "deleteOptions": {"dryRun": ["All"]}});
    let (status, _) = c.http(
        "POST",
        &format!("/api/v1/namespaces/payments/pods/{front}/eviction"),
        "application/json",
        &dry.to_string(),
    );
    assert_eq!(status, 201);
    assert!(
        c.get_json(&format!("/api/v1/namespaces/payments/pods/{front}"))["metadata"].get("deletionTimestamp").is_none()
    );

    // A plain DELETE that bypasses a budget allowing nothing is a violation.
    let (status, _) = c.http("DELETE", &format!("/api/v1/namespaces/payments/pods/{ledger}"), "application/json", "");
    assert_eq!(status, 200);
    let stats = c.stats();
    assert_eq!(stats["pdbViolations"], 1, "{stats}");
    assert_eq!(stats["pdbViolationDetails"][0]["pdb"], "payments/ledger-strict");
    assert!(stats["sent429"].as_u64().unwrap() >= 1);
    assert!(stats["requests"]["evict pods"].as_u64().unwrap() >= 3, "{stats}");
    assert!(stats["requests"]["create poddisruptionbudgets"].as_u64().unwrap() >= 1, "{stats}");
    // A 404 is a gone pod.
    let (status, _) = c.http("POST", "/api/v1/namespaces/payments/pods/nope/eviction", "application/json", "{}");
    assert_eq!(status, 404);
}

#[test]
fn rest_semantics_conflicts_dry_run_patches_and_status_errors() {
    let c = Cluster::start(small("1.30.14"), 0.05);
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "lock", "namespace": "kube-system"}, "spec": {"holderIdentity": "a"}});
    let (status, body) = c.http(
        "POST",
        "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases",
        "application/json",
        &lease.to_string(),
    );
    assert_eq!(status, 201, "{body}");
    let created: Value = serde_json::from_str(&body).unwrap();
    let rv = created["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    let (status, _) = c.http(
        "POST",
        "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases",
        "application/json",
        &lease.to_string(),
    );
    assert_eq!(status, 409, "AlreadyExists");
    let mut update = created.clone();
    update["spec"]["holderIdentity"] = json!("b");
    let (status, _) = c.http(
        "PUT",
        "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/lock",
        "application/json",
        &update.to_string(),
    );
    assert_eq!(status, 200);
    // The same resourceVersion again is stale now: 409 Conflict.
    update["metadata"]["resourceVersion"] = json!(rv);
    let (status, body) = c.http(
        "PUT",
        "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/lock",
        "application/json",
        &update.to_string(),
    );
    assert_eq!(status, 409, "{body}");
    let s: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((s["kind"].as_str(), s["reason"].as_str()), (Some("Status"), Some("Conflict")));

    // dryRun=All on a patch changes nothing.
    let (status, body) = c.http(
        "PATCH",
        "/api/v1/nodes/w-1?dryRun=All",
        "application/merge-patch+json",
        r#"{"spec":{"unschedulable":true}}"#,
    );
    assert_eq!(status, 200);
    assert!(body.contains(r#""unschedulable":true"#));
    assert!(c.get_json("/api/v1/nodes/w-1")["spec"].get("unschedulable").is_none());
    // JSON patch and strategic merge.
    let (status, _) = c.http(
        "PATCH",
        "/api/v1/nodes/w-1",
        "application/json-patch+json",
        r#"[{"op":"add","path":"/metadata/labels/k8s-upgrade.dev~1wave","value":"1"}]"#,
    );
    assert_eq!(status, 200);
    assert_eq!(c.get_json("/api/v1/nodes/w-1")["metadata"]["labels"]["k8s-upgrade.dev/wave"], "1");
    let (status, _) = c.http("PATCH", "/api/v1/nodes/w-1", "application/apply-patch+yaml", "{}");
    assert_eq!(status, 415);
    // Unknown paths and objects are Status 404s; a bad selector is a 400.
    let (status, body) = c.http("GET", "/api/v1/namespaces/default/pods/nope", "application/json", "");
    assert_eq!(status, 404);
    assert!(body.contains(r#""kind":"Status""#) && body.contains(r#"pods \"nope\" not found"#), "{body}");
    assert_eq!(c.http("GET", "/apis/example.com/v1/widgets", "application/json", "").0, 404);
    assert_eq!(c.http("GET", "/api/v1/pods?labelSelector=a%20in%20b", "application/json", "").0, 400);
    // Pagination: limit + continue walks every pod once.
    let mut names = Vec::new();
    let mut cont = String::new();
    loop {
        let page = c.get_json(&format!("/api/v1/pods?limit=2&continue={cont}"));
        assert_eq!(page["kind"], "PodList");
        assert!(page["metadata"]["resourceVersion"].as_str().is_some());
        names.extend(
            page["items"].as_array().unwrap().iter().map(|p| p["metadata"]["name"].as_str().unwrap().to_string()),
        );
        match page["metadata"]["continue"].as_str() {
            Some(t) => cont = t.to_string(),
            None => break,
        }
    }
    let all = c.get_json("/api/v1/pods")["items"].as_array().unwrap().len();
    assert_eq!(names.len(), all);
}

#[test]
fn typed_clients_read_every_builtin_kind() {
    use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
    use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Secret};
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    use kube::api::{Api, ListParams};
    let c = Cluster::builtin("demo", 0.05);
    let client = c.kube_client();
    c.rt.block_on(async {
        let lp = ListParams::default();
        assert_eq!(Api::<Node>::all(client.clone()).list(&lp).await.unwrap().items.len(), 9);
        let pods = Api::<Pod>::all(client.clone()).list(&lp).await.unwrap();
        assert!(pods.items.len() > 30);
        assert!(
            pods.items.iter().any(|p| p
                .metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key("kubernetes.io/config.mirror")))
        );
        assert!(!Api::<Deployment>::all(client.clone()).list(&lp).await.unwrap().items.is_empty());
        assert!(!Api::<ReplicaSet>::all(client.clone()).list(&lp).await.unwrap().items.is_empty());
        assert_eq!(Api::<StatefulSet>::all(client.clone()).list(&lp).await.unwrap().items.len(), 1);
        assert!(!Api::<DaemonSet>::all(client.clone()).list(&lp).await.unwrap().items.is_empty());
        assert!(Api::<PodDisruptionBudget>::all(client.clone()).list(&lp).await.unwrap().items.len() >= 4);
        assert!(Api::<Namespace>::all(client.clone()).list(&lp).await.unwrap().items.len() >= 8);
        let secrets = Api::<Secret>::namespaced(client.clone(), "reports").list(&lp).await.unwrap();
        let helm = secrets
            .items
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some("sh.helm.release.v1.reports.v3"))
            .expect("helm release secret");
        assert_eq!(helm.type_.as_deref(), Some("helm.sh/release.v1"));
        // data.release is Helm's base64(gzip(json)); check it decodes to the release.
        use base64::Engine;
        let raw = &helm.data.as_ref().unwrap()["release"].0;
        let gz = base64::engine::general_purpose::STANDARD.decode(raw).unwrap();
        let mut json = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut json).unwrap();
        let release: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(release["name"], "reports");
        assert!(release["manifest"].as_str().unwrap().contains("policy/v1beta1"));
    });
}

#[test]
fn watcher_sees_updates_survives_dropped_watches_and_relists_on_410() {
    use futures::StreamExt;
    use k8s_openapi::api::core::v1::Node;
    use kube::api::{Api, Patch, PatchParams};
    use kube::runtime::watcher::{self, Event};
    let c = Cluster::start(small("1.30.14"), 1.0);
    let client = c.kube_client();
    let api: Api<Node> = Api::all(client);
    let seen = Arc::new(std::sync::Mutex::new(Vec::<(String, String)>::new()));
    let inits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (s2, i2, api2) = (seen.clone(), inits.clone(), api.clone());
    c.rt.spawn(async move {
        let mut stream = watcher::watcher(api2, watcher::Config::default()).boxed();
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(Event::Init) => {
                    i2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                Ok(Event::Apply(n)) | Ok(Event::InitApply(n)) => {
                    let mark =
                        n.metadata.annotations.as_ref().and_then(|a| a.get("test/mark")).cloned().unwrap_or_default();
                    s2.lock().unwrap().push((n.metadata.name.unwrap_or_default(), mark));
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    let patch = |mark: &str| {
        let p = json!({"metadata": {"annotations": {"test/mark": mark}}});
        c.rt.block_on(api.patch("w-2", &PatchParams::default(), &Patch::Merge(&p))).unwrap();
    };
    let saw = |mark: &str| seen.lock().unwrap().iter().any(|(n, m)| n == "w-2" && m == mark);
    c.wait_for("initial list", Duration::from_secs(10), || inits.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    patch("one");
    c.wait_for("update one", Duration::from_secs(10), || saw("one"));

    // Drop every watch stream after 0.3 s: the watcher re-watches and still sees changes.
    let (status, _) = c.http("PATCH", "/sim/faults", "application/json", r#"{"dropWatchesEverySeconds": 0.3}"#);
    assert_eq!(status, 200);
    std::thread::sleep(Duration::from_millis(800));
    patch("two");
    c.wait_for("update two after dropped watches", Duration::from_secs(10), || saw("two"));

    // Keep the watcher disconnected (watches fail with 500) while a change lands and history is
    // compacted: resuming from its old version then gets 410 Gone, and it relists (a new Init)
    // that brings the missed change.
    let before = inits.load(std::sync::atomic::Ordering::SeqCst);
    let (status, _) = c.http(
        "PATCH",
        "/sim/faults",
        "application/json",
        r#"{"errors": [{"verb": "watch", "resource": "nodes", "code": 500, "rate": 1.0}]}"#,
    );
    assert_eq!(status, 200);
    std::thread::sleep(Duration::from_millis(800));
    patch("three");
    c.http("POST", "/sim/compact", "application/json", "");
    let (status, _) = c.http("PUT", "/sim/faults", "application/json", "{}");
    assert_eq!(status, 200);
    c.wait_for("relist after 410", Duration::from_secs(15), || {
        inits.load(std::sync::atomic::Ordering::SeqCst) > before
    });
    c.wait_for("missed update three arrives with the relist", Duration::from_secs(10), || saw("three"));
    patch("four");
    c.wait_for("update four after relist", Duration::from_secs(10), || saw("four"));
    assert!(c.stats()["watchesOpened"].as_u64().unwrap() >= 3);
}

#[test]
fn kubelet_upgrade_annotation_and_skew_refusal() {
    let c = Cluster::start(small("1.30.14"), 0.02);
    let annotate = |node: &str, v: &str| {
        let body = json!({"metadata": {"annotations": {"sim.k8s-upgrade.dev/upgrade-to": v}}}).to_string();
        assert_eq!(c.http("PATCH", &format!("/api/v1/nodes/{node}"), "application/merge-patch+json", &body).0, 200);
    };
    let ready = |node: &str| -> (bool, String, String) {
        let n = c.get_json(&format!("/api/v1/nodes/{node}"));
        let cond = n["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").unwrap().clone();
        (
            cond["status"] == "True",
            n["status"]["nodeInfo"]["kubeletVersion"].as_str().unwrap().to_string(),
            cond["message"].as_str().unwrap_or_default().to_string(),
        )
    };
    // A worker newer than the apiserver stays NotReady, saying why.
    annotate("w-1", "1.31.14");
    c.wait_for("w-1 refuses to come back", Duration::from_secs(10), || {
        ready("w-1").2.contains("newer than the oldest kube-apiserver")
    });
    assert!(!ready("w-1").0);
    // The control plane moves first: static pods follow, /version reports it, then the worker comes back.
    annotate("cp", "1.31.14");
    c.wait_for("control plane at 1.31", Duration::from_secs(10), || c.get_json("/version")["minor"] == "31");
    c.wait_for("w-1 back at 1.31", Duration::from_secs(10), || ready("w-1").0 && ready("w-1").1 == "v1.31.14");
    let api = c.get_json("/api/v1/namespaces/kube-system/pods/kube-apiserver-cp");
    assert_eq!(api["spec"]["containers"][0]["image"], "registry.k8s.io/kube-apiserver:v1.31.14");
}

#[test]
fn faults_inject_errors_latency_stuck_pods_and_dead_nodes() {
    let c = Cluster::start(small("1.30.14"), 0.02);
    let set = |body: &str| assert_eq!(c.http("PUT", "/sim/faults", "application/json", body).0, 200);
    // Every pod list fails with 503 and a Retry-After; other resources are untouched.
    set(r#"{"errors": [{"verb": "list", "resource": "pods", "code": 503, "rate": 1.0, "retryAfter": 2}]}"#);
    let raw = https_raw(c.addr(), c.tls.clone(), "GET", "/api/v1/pods", "", "");
    assert!(raw.starts_with("HTTP/1.0 503") || raw.starts_with("HTTP/1.1 503"), "{raw}");
    assert!(raw.to_lowercase().contains("retry-after: 2"), "{raw}");
    assert_eq!(c.http("GET", "/api/v1/nodes", "application/json", "").0, 200);
    // A bad fault document is refused and names the problem.
    let (status, body) =
        c.http("PUT", "/sim/faults", "application/json", r#"{"errors": [{"code": 404, "rate": 1.0}]}"#);
    assert_eq!(status, 400);
    assert!(body.contains("404"), "{body}");
    // Latency is added to every API request.
    set(r#"{"latencyMs": 150}"#);
    let t = Instant::now();
    c.get_json("/api/v1/nodes");
    assert!(t.elapsed() >= Duration::from_millis(150));
    // A pod stuck terminating stays; a node that never comes back stays NotReady.
    set(r#"{"podsStuckTerminating": ["default/web-*"], "nodesNeverReady": ["w-3"]}"#);
    let web = c.get_json("/api/v1/namespaces/default/pods?labelSelector=app%3Dweb")["items"][0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(c.http("DELETE", &format!("/api/v1/namespaces/default/pods/{web}"), "application/json", "").0, 200);
    let body = json!({"metadata": {"annotations": {"sim.k8s-upgrade.dev/upgrade-to": "1.30.15"}}}).to_string();
    assert_eq!(c.http("PATCH", "/api/v1/nodes/w-3", "application/merge-patch+json", &body).0, 200);
    std::thread::sleep(Duration::from_millis(1500));
    let pod = c.get_json(&format!("/api/v1/namespaces/default/pods/{web}"));
    assert!(pod["metadata"]["deletionTimestamp"].is_string(), "still terminating: {pod}");
    let node = c.get_json("/api/v1/nodes/w-3");
    let ready = node["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").unwrap().clone();
    assert_eq!(ready["status"], "False");
    assert!(ready["message"].as_str().unwrap().contains("never comes back"), "{ready}");
    // Clearing the faults lets the pod finish terminating.
    set("{}");
    c.wait_for("stuck pod gone", Duration::from_secs(10), || {
        c.http("GET", &format!("/api/v1/namespaces/default/pods/{web}"), "application/json", "").0 == 404
    });
    let stats = c.stats();
    assert!(stats["injectedErrors"]["503"].as_u64().unwrap() >= 1, "{stats}");
}

#[test]
fn availability_oracle_tracks_dips_and_lost_pods() {
    let c = Cluster::start(small("1.30.14"), 0.02);
    c.wait_for("first observation", Duration::from_secs(10), || {
        c.stats()["minAvailable"]["default/Deployment/web"]["desired"] == 3
    });
    // Deleting a pod directly dips availability until its replacement is ready.
    let web = c.get_json("/api/v1/namespaces/default/pods?labelSelector=app%3Dweb")["items"][0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    c.http("DELETE", &format!("/api/v1/namespaces/default/pods/{web}?gracePeriodSeconds=0"), "application/json", "");
    c.wait_for("dip recorded", Duration::from_secs(10), || {
        c.stats()["minAvailable"]["default/Deployment/web"]["minReady"] == 2
    });
    c.wait_for("replacement ready", Duration::from_secs(10), || {
        c.get_json("/apis/apps/v1/namespaces/default/deployments/web")["status"]["readyReplicas"] == 3
    });
    assert_eq!(c.stats()["podsLost"], 0);
    // With every worker cordoned, a deleted pod cannot come back: it is lost.
    for n in ["w-1", "w-2", "w-3"] {
        c.http(
            "PATCH",
            &format!("/api/v1/nodes/{n}"),
            "application/merge-patch+json",
            r#"{"spec":{"unschedulable":true}}"#,
        );
    }
    let web = c.get_json("/api/v1/namespaces/default/pods?labelSelector=app%3Dweb")["items"][0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    c.http("DELETE", &format!("/api/v1/namespaces/default/pods/{web}?gracePeriodSeconds=0"), "application/json", "");
    c.wait_for("a pending replacement", Duration::from_secs(10), || {
        c.get_json("/api/v1/namespaces/default/pods?fieldSelector=status.phase%3DPending")["items"]
            .as_array()
            .unwrap()
            .len()
            == 1
    });
    let pending = c.get_json("/api/v1/namespaces/default/pods?fieldSelector=status.phase%3DPending");
    assert!(
        pending["items"][0]["status"]["conditions"][0]["message"]
            .as_str()
            .unwrap()
            .ends_with(
                "3 node(s) were unschedulable. preemption: 0/4 nodes are available: 4 Preemption is not helpful for scheduling."
            ),
        "{pending}"
    );
    let stats = c.stats();
    assert!(stats["nodes"].as_array().unwrap().iter().filter(|n| n["schedulable"] == false).count() == 3, "{stats}");
}

#[test]
fn malformed_bodies_are_refused_and_concurrent_evictions_cannot_overspend_a_budget() {
    let c = Cluster::start(small("1.30.14"), 0.02);
    for (ct, body) in [
        ("application/merge-patch+json", "[]"),
        ("application/merge-patch+json", r#"{"metadata":1}"#),
        ("application/json-patch+json", r#"[{"op":"replace","path":"","value":5}]"#),
    ] {
        let (status, body) = c.http("PATCH", "/api/v1/nodes/w-1", ct, body);
        assert!(status == 422 || status == 400, "{status} {body}");
    }
    let (status, _) = c.http(
        "POST",
        "/api/v1/namespaces/default/pods",
        "application/json",
        r#"{"metadata":{"name":"p"},"status":"Pending"}"#,
    );
    assert_eq!(status, 422);
    // The simulator still works after all that.
    assert_eq!(c.get_json("/api/v1/nodes/w-1")["kind"], "Node");
    // `spec.nodeName=` selects unbound pods (none before the evictions below; the replacement
    // of an evicted pod is briefly unbound), not an error or everything.
    assert_eq!(c.get_json("/api/v1/pods?fieldSelector=spec.nodeName%3D")["items"].as_array().unwrap().len(), 0);
    // web has 3 replicas and maxUnavailable 1: of three evictions sent at once, exactly one passes.
    let pods: Vec<String> = c.get_json("/api/v1/namespaces/default/pods?labelSelector=app%3Dweb")["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = pods
            .iter()
            .map(|p| {
                let c = &c;
                s.spawn(move || {
                    let body = json!({"kind": "Eviction", "apiVersion": "policy/v1", "metadata": {"name": p, "namespace": "default"}}).to_string();
                    c.http("POST", &format!("/api/v1/namespaces/default/pods/{p}/eviction"), "application/json", &body).0
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 2, "{statuses:?}");
}

#[test]
fn fault_values_and_watch_timeouts_are_bounded() {
    let c = Cluster::start(small("1.30.14"), 0.02);
    for (body, named) in [
        (r#"{"latencyMs": 18446744073709551615}"#, "18446744073709551615"),
        (r#"{"latencyMs": 600000}"#, "600000"),
        (r#"{"dropWatchesEverySeconds": -1}"#, "-1"),
        (r#"{"dropWatchesEverySeconds": 1e308}"#, "dropWatchesEverySeconds"),
    ] {
        let (status, text) = c.http("PATCH", "/sim/faults", "application/json", body);
        assert_eq!(status, 400, "{body} was accepted: {text}");
        assert!(text.contains(named), "{body}: {text}");
    }
    // Beyond int64 is not a number the apiserver takes; the simulator says so instead of
    // panicking in the watch task (and keeps serving).
    let (status, text) =
        c.http("GET", "/api/v1/pods?watch=1&timeoutSeconds=18446744073709551615", "application/json", "");
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("timeoutSeconds"), "{text}");
    // A watch with a timeout ends when it runs out.
    let raw = https_raw(c.addr(), c.tls.clone(), "GET", "/api/v1/nodes?watch=1&timeoutSeconds=1", "", "");
    assert!(raw.contains(" 200 "), "{raw}");
    assert_eq!(c.http("GET", "/api/v1/nodes", "application/json", "").0, 200);
}

/// Pods in the cluster, from the simulator's own count.
fn pod_count(c: &Cluster) -> u64 {
    c.stats()["objects"]["pods"].as_u64().unwrap()
}

#[test]
fn replicas_are_bounded_on_every_write_and_the_pod_count_stays_bounded_d33() {
    let c = Cluster::start(small("1.30.14"), 0.02);
    let before = pod_count(&c);
    let web = "/apis/apps/v1/namespaces/default/deployments/web";
    // Every way of writing the value: merge, strategic and JSON patches, an update, a create.
    for (method, path, ct, body) in [
        ("PATCH", web, "application/merge-patch+json", r#"{"spec":{"replicas":100000000}}"#.to_string()),
        ("PATCH", web, "application/strategic-merge-patch+json", r#"{"spec":{"replicas":100000000}}"#.to_string()),
        ("PATCH", web, "application/json-patch+json", r#"[{"op":"replace","path":"/spec/replicas","value":100000000}]"#.to_string()),
        ("PATCH", web, "application/merge-patch+json", r#"{"spec":{"replicas":-1}}"#.to_string()),
        ("PUT", web, "application/json", {
            let mut d = c.get_json(web);
            d["spec"]["replicas"] = json!(100_001);
            d.to_string()
        }),
        ("POST", "/apis/apps/v1/namespaces/default/deployments", "application/json", json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "huge"},
            "spec": {"replicas": 100_000_000, "selector": {"matchLabels": {"app": "huge"}},
                     "template": {"metadata": {"labels": {"app": "huge"}}, "spec": {"containers": [{"name": "c", "image": "pause"}]}}},
        }).to_string()),
        ("POST", "/apis/apps/v1/namespaces/default/statefulsets", "application/json", json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "huge"},
            "spec": {"replicas": 200_000, "serviceName": "huge", "selector": {"matchLabels": {"app": "huge"}},
                     "template": {"metadata": {"labels": {"app": "huge"}}, "spec": {"containers": [{"name": "c", "image": "pause"}]}}},
        }).to_string()),
        ("PUT", "/apis/apps/v1/namespaces/default/deployments/web/scale", "application/json",
            r#"{"kind":"Scale","apiVersion":"autoscaling/v1","metadata":{"name":"web","namespace":"default"},"spec":{"replicas":100001}}"#.to_string()),
    ] {
        let (status, text) = c.http(method, path, ct, &body);
        assert_eq!(status, 422, "{method} {path} {ct}: {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["reason"], "Invalid", "{text}");
        assert!(v["message"].as_str().unwrap().contains("spec.replicas: Invalid value: "), "{text}");
        assert_eq!(v["details"]["causes"][0]["field"], "spec.replicas", "{text}");
    }
    // A value that is no int32 does not decode.
    let (status, text) = c.http("PATCH", web, "application/merge-patch+json", r#"{"spec":{"replicas":"many"}}"#);
    assert_eq!(status, 422, "{text}");
    assert!(
        text.contains("cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32"),
        "{text}"
    );
    // kubectl sees the refusal, named as a field error.
    if kubectl_available("replicas_are_bounded_on_every_write_and_the_pod_count_stays_bounded_d33") {
        let o = c.kubectl(&["patch", "deploy", "web", "-p", r#"{"spec":{"replicas":100000000}}"#]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains("is invalid") && err.contains("must be no more than 100000"),
            "{err}"
        );
    }
    // The ceiling itself is allowed, and nothing above it reached the store: the pod count did
    // not run away.
    assert_eq!(c.get_json(web)["spec"]["replicas"], 3);
    std::thread::sleep(Duration::from_millis(500));
    assert!(pod_count(&c) <= before + 3, "{} pods, {before} before", pod_count(&c));
    assert_eq!(c.stats()["podCeilingReached"], false);
}

#[test]
fn content_types_selectors_and_paths_are_held_to_the_apiserver_d34() {
    let c = Cluster::start(small("1.30.14"), 0.02);
    let cms = "/api/v1/namespaces/default/configmaps";
    // A body in a media type the apiserver does not decode: 415, with what it accepts.
    let cm = |name: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}).to_string();
    for (method, path, ct) in [
        ("POST", cms.to_string(), "text/xml"),
        ("PUT", format!("{cms}/x"), "text/plain"),
        ("POST", cms.to_string(), "json"),
    ] {
        let (status, text) = c.http(method, &path, ct, &cm("x"));
        assert_eq!(status, 415, "{method} {ct}: {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["reason"], "UnsupportedMediaType", "{text}");
        assert_eq!(
            v["message"],
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf"
        );
    }
    // JSON with parameters, and YAML, are read.
    assert_eq!(c.http("POST", cms, "application/json; charset=utf-8", &cm("a-b")).0, 201);
    let (status, text) = c.http(
        "POST",
        cms,
        "application/yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata: {k: v}\n",
    );
    assert_eq!(status, 201, "{text}");
    assert_eq!(c.get_json(&format!("{cms}/from-yaml"))["data"]["k"], "v");
    // A patch in no patch type: the router's 415.
    let (status, text) = c.http("PATCH", &format!("{cms}/a-b"), "application/json", "{}");
    assert_eq!(status, 415, "{text}");
    assert!(text.contains("415: Unsupported Media Type"), "{text}");

    // Paths are percent-decoded: %2D is a dash; %2F separates segments, so no name holds one.
    assert_eq!(c.get_json(&format!("{cms}/a%2Db"))["metadata"]["name"], "a-b");
    assert_eq!(c.http("GET", &format!("{cms}/a%2Fb"), "application/json", "").0, 404);
    assert_eq!(c.http("GET", &format!("{cms}/a%zzb"), "application/json", "").0, 400);

    // Field selectors: only the labels the apiserver supports for the kind.
    for (path, message) in [
        ("/api/v1/pods?fieldSelector=spec.foo.bar%3Dx", "field label not supported: spec.foo.bar"),
        ("/api/v1/nodes?fieldSelector=metadata.namespace%3Dx", "field label not supported: metadata.namespace"),
        (
            "/api/v1/configmaps?fieldSelector=data.k%3Dv",
            r#""data.k" is not a known field selector: only "metadata.name", "metadata.namespace""#,
        ),
        (
            "/api/v1/pods?fieldSelector=spec.nodeName",
            "invalid selector: 'spec.nodeName'; can't understand 'spec.nodeName'",
        ),
        ("/api/v1/pods?watch=1&fieldSelector=spec.foo%3Dx", "field label not supported: spec.foo"),
    ] {
        let (status, text) = c.http("GET", path, "application/json", "");
        assert_eq!(status, 400, "{path}: {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!((v["reason"].as_str(), v["message"].as_str()), (Some("BadRequest"), Some(message)), "{path}");
    }
    let running = c.get_json("/api/v1/pods?fieldSelector=status.phase%3DRunning,spec.hostNetwork%3Dfalse");
    assert!(!running["items"].as_array().unwrap().is_empty(), "{running}");
    let schedulable = c.get_json("/api/v1/nodes?fieldSelector=spec.unschedulable%3Dfalse");
    assert_eq!(schedulable["items"].as_array().unwrap().len(), 4, "{schedulable}");

    // Label selectors: parsed and checked as labels.Parse does.
    let parens = "(".repeat(5000);
    for (selector, message) in [
        (parens.as_str(), "found '(', expected: !, identifier, or 'end of string'".to_string()),
        ("app=((((", "unable to parse requirement: found '(', expected: identifier".to_string()),
        (
            &*format!("app={}", "v".repeat(64)),
            format!(
                "unable to parse requirement: values[0][app]: Invalid value: \"{}\": must be no more than 63 bytes",
                "v".repeat(64)
            ),
        ),
    ] {
        let q: String = form_urlencoded::byte_serialize(selector.as_bytes()).collect();
        let (status, text) = c.http("GET", &format!("/api/v1/pods?labelSelector={q}"), "application/json", "");
        assert_eq!(status, 400, "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["message"].as_str(), Some(message.as_str()));
    }
    if kubectl_available("content_types_selectors_and_paths_are_held_to_the_apiserver_d34") {
        let out = c.kubectl_ok(&[
            "get",
            "pods",
            "-l",
            "app in (web)",
            "--field-selector",
            "status.phase=Running",
            "-o",
            "name",
        ]);
        assert_eq!(out.lines().count(), 3, "{out}");
    }
}

#[test]
fn resource_versions_are_parsed_and_a_future_one_is_waited_for_d34() {
    let c = Cluster::start(small("1.30.14"), 0.02);
    let invalid = |rv: &str| {
        format!("resourceVersion: Invalid value: \"{rv}\": strconv.ParseUint: parsing \"{rv}\": invalid syntax")
    };
    // A list: 400, from the storage's check of list options.
    for rv in ["abc", "-5"] {
        let (status, text) = c.http("GET", &format!("/api/v1/pods?resourceVersion={rv}"), "application/json", "");
        assert_eq!(status, 400, "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["reason"], "BadRequest");
        assert_eq!(v["message"].as_str().unwrap(), format!("invalid resource version: {}", invalid(rv)));
    }
    // A get and a watch: the watch cache's parse error, a 500 without a reason, as a real
    // apiserver answers (kubernetes/kubernetes#139485).
    for path in [
        "/api/v1/namespaces/default/configmaps/kube-root-ca.crt?resourceVersion=abc",
        "/api/v1/pods?watch=1&resourceVersion=abc",
    ] {
        let (status, text) = c.http("GET", path, "application/json", "");
        assert_eq!(status, 500, "{path}: {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert!(v.get("reason").is_none(), "{text}");
        assert_eq!(v["message"].as_str().unwrap(), invalid("abc"));
    }
    // A list at a version the store has not reached waits up to 3 s, then 504 Timeout.
    let started = Instant::now();
    let raw = https_raw(c.addr(), c.tls.clone(), "GET", "/api/v1/pods?resourceVersion=99999999999", "", "");
    let took = started.elapsed();
    assert!(raw.starts_with("HTTP/1.0 504") || raw.starts_with("HTTP/1.1 504"), "{raw}");
    assert!(raw.to_ascii_lowercase().contains("retry-after: 1"), "{raw}");
    assert!(took >= Duration::from_millis(2900) && took < Duration::from_secs(10), "{took:?}");
    let body: Value = serde_json::from_str(raw.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(body["reason"], "Timeout");
    assert!(
        body["message"].as_str().unwrap().starts_with("Timeout: Too large resource version: 99999999999, current: ")
    );
    assert_eq!(body["details"]["causes"][0]["reason"], "ResourceVersionTooLarge");
    // A watch from the future is accepted and silent (no bookmark past the store either) until
    // the store passes the version; then it delivers what comes after it.
    let raw = https_raw(
        c.addr(),
        c.tls.clone(),
        "GET",
        "/api/v1/configmaps?watch=1&allowWatchBookmarks=true&timeoutSeconds=1&resourceVersion=99999999999",
        "",
        "",
    );
    assert!(raw.contains(" 200 ") && !raw.contains("\"type\""), "{raw}");
    let current: u64 =
        c.get_json("/api/v1/configmaps")["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
    let from = current + 1;
    let watcher = {
        let (addr, tls) = (c.addr(), c.tls.clone());
        std::thread::spawn(move || {
            https_raw(
                addr,
                tls,
                "GET",
                &format!("/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=3&resourceVersion={from}"),
                "",
                "",
            )
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    for name in ["first", "second"] {
        let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}).to_string();
        assert_eq!(c.http("POST", "/api/v1/namespaces/default/configmaps", "application/json", &body).0, 201);
    }
    let raw = watcher.join().unwrap();
    let events: Vec<Value> = raw
        .split_once("\r\n\r\n")
        .unwrap()
        .1
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(events.iter().any(|e| e["object"]["metadata"]["name"] == "second"), "{raw}");
    for e in &events {
        let rv: u64 = e["object"]["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
        assert!(rv > from, "an event at or before {from}: {e}");
    }
}
