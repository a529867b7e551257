//! The simulator against the real apiserver at the same version: one list of requests (discovery,
//! list with label and field selectors, pagination, Table output, evictions allowed and refused,
//! a cordon patch, 404/409/422 bodies, a watch from resourceVersion 1) sent to both,
//! the answers normalised (identifiers, timestamps, addresses) and compared field by field.
//! Differences we accept live in `accepted-differences.yaml`, each with its reason; any other
//! difference fails, and so does an accepted one that no longer occurs.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_upgrade::catalog::Catalog;
use k8s_upgrade::sim::{self, Scenario, SimOptions};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::cluster::{Options, RealCluster, available, versions};

struct Endpoint {
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
}

fn client_config(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap()],
            PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap(),
        )
        .unwrap();
    Arc::new(config)
}

impl Endpoint {
    /// One HTTP/1.0 exchange; (status, body). A watch answers until its timeoutSeconds.
    fn call(&self, method: &str, path: &str, accept: &str, content_type: &str, body: &str) -> (u16, String) {
        let name = rustls::pki_types::ServerName::from(self.addr.ip());
        let conn = rustls::ClientConnection::new(self.tls.clone(), name).unwrap();
        let sock = TcpStream::connect(self.addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, sock);
        write!(
            tls,
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: {accept}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut raw = Vec::new();
        if let Err(e) = tls.read_to_end(&mut raw) {
            assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "{method} {path}: {e}");
        }
        let raw = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        (head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0), body.to_string())
    }

    fn json(&self, method: &str, path: &str, body: &Value) -> (u16, Value) {
        let (code, text) = self.call(method, path, "application/json", "application/json", &body.to_string());
        (code, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }
}

/// What the test creates on both sides before the requests: bare pods on fixed nodes (so names
/// match), budgets that allow, refuse, and overlap.
fn setup_objects() -> Vec<(&'static str, Value)> {
    let pod = |name: &str, node: &str, labels: Value| {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "diff", "labels": labels},
               "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0,
                        "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]}})
    };
    let pdb = |name: &str, selector: Value, rule: Value| {
        let mut spec = json!({"selector": {"matchLabels": selector}});
        spec.as_object_mut().unwrap().extend(rule.as_object().unwrap().clone());
        json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
               "metadata": {"name": name, "namespace": "diff"}, "spec": spec})
    };
    vec![
        ("/api/v1/namespaces", json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "diff"}})),
        ("/api/v1/namespaces/diff/pods", pod("web-1", "worker-1", json!({"app": "web"}))),
        ("/api/v1/namespaces/diff/pods", pod("web-2", "worker-2", json!({"app": "web"}))),
        ("/api/v1/namespaces/diff/pods", pod("web-3", "worker-1", json!({"app": "web"}))),
        ("/api/v1/namespaces/diff/pods", pod("api-1", "worker-2", json!({"app": "api"}))),
        ("/api/v1/namespaces/diff/pods", pod("strict-1", "worker-1", json!({"app": "strict"}))),
        ("/api/v1/namespaces/diff/pods", pod("loose-1", "worker-2", json!({"app": "loose"}))),
        (
            "/apis/policy/v1/namespaces/diff/poddisruptionbudgets",
            pdb("web", json!({"app": "web"}), json!({"minAvailable": 2})),
        ),
        (
            "/apis/policy/v1/namespaces/diff/poddisruptionbudgets",
            pdb("api-a", json!({"app": "api"}), json!({"maxUnavailable": 1})),
        ),
        (
            "/apis/policy/v1/namespaces/diff/poddisruptionbudgets",
            pdb("api-b", json!({"app": "api"}), json!({"maxUnavailable": 1})),
        ),
        (
            "/apis/policy/v1/namespaces/diff/poddisruptionbudgets",
            pdb("strict", json!({"app": "strict"}), json!({"minAvailable": 1})),
        ),
        // maxUnavailable counts against the controllers' scale: over a bare pod alone, nothing
        // may be evicted.
        (
            "/apis/policy/v1/namespaces/diff/poddisruptionbudgets",
            pdb("loose", json!({"app": "loose"}), json!({"maxUnavailable": 1})),
        ),
        // Next to a ReplicaSet's pods, a bare pod adds health but no scale: evictions are allowed.
        (
            "/apis/apps/v1/namespaces/diff/replicasets",
            // Its selector leaves the bare pod out: a ReplicaSet adopts the orphans it selects.
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "mixed", "namespace": "diff"},
                   "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "mixed", "owner": "rs"}},
                            "template": {"metadata": {"labels": {"app": "mixed", "owner": "rs"}},
                                         "spec": {"terminationGracePeriodSeconds": 0,
                                                  "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]}}}}),
        ),
        ("/api/v1/namespaces/diff/pods", pod("mixed-bare", "worker-1", json!({"app": "mixed"}))),
        // Two bare pods, one of which may go: an eviction with a stale UID is refused, yet
        // costs the budget its disruption (the apiserver records it before the delete fails).
        ("/api/v1/namespaces/diff/pods", pod("stale-1", "worker-1", json!({"app": "stale"}))),
        ("/api/v1/namespaces/diff/pods", pod("stale-2", "worker-2", json!({"app": "stale"}))),
        (
            "/apis/policy/v1/namespaces/diff/poddisruptionbudgets",
            pdb("stale", json!({"app": "stale"}), json!({"minAvailable": 1})),
        ),
        // A namespace that will be deleted while a finalizer holds its last pod.
        ("/api/v1/namespaces", json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ending"}})),
        (
            "/api/v1/namespaces/ending/pods",
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": "held", "namespace": "ending", "finalizers": ["k8s-upgrade.dev/test-hold"]},
                   "spec": {"nodeName": "worker-1", "terminationGracePeriodSeconds": 0,
                            "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]}}),
        ),
        (
            "/apis/policy/v1/namespaces/diff/poddisruptionbudgets",
            pdb("mixed", json!({"app": "mixed"}), json!({"maxUnavailable": 1})),
        ),
    ]
}

/// How a request's answers are compared.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// The whole normalised body.
    Whole,
    /// Discovery: every resource (or group) the simulator lists must be listed by the apiserver
    /// with the same fields; the apiserver may list more.
    Subset,
    /// A watch: the first event only.
    FirstEvent,
}

struct Request {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    accept: &'static str,
    content_type: &'static str,
    body: Value,
    mode: Mode,
}

fn requests() -> Vec<Request> {
    let json_req = |name, method, path, body: Value, mode| Request {
        name,
        method,
        path,
        accept: "application/json",
        content_type: "application/json",
        body,
        mode,
    };
    let eviction = |pod: &str| json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod, "namespace": "diff"}});
    vec![
        json_req("discovery-core", "GET", "/api/v1", Value::Null, Mode::Subset),
        json_req("discovery-groups", "GET", "/apis", Value::Null, Mode::Subset),
        json_req("discovery-policy", "GET", "/apis/policy/v1", Value::Null, Mode::Subset),
        json_req("discovery-apps", "GET", "/apis/apps/v1", Value::Null, Mode::Subset),
        json_req(
            "list-by-label",
            "GET",
            "/api/v1/namespaces/diff/pods?labelSelector=app%3Dweb",
            Value::Null,
            Mode::Whole,
        ),
        json_req(
            "list-by-label-set",
            "GET",
            "/api/v1/namespaces/diff/pods?labelSelector=app+in+%28api%2Cstrict%29",
            Value::Null,
            Mode::Whole,
        ),
        json_req(
            "list-by-field",
            "GET",
            "/api/v1/pods?fieldSelector=spec.nodeName%3Dworker-2%2Cmetadata.namespace%3Ddiff&labelSelector=app%21%3Dmixed",
            Value::Null,
            Mode::Whole,
        ),
        json_req(
            "list-page",
            "GET",
            "/api/v1/namespaces/diff/pods?limit=2&labelSelector=app%21%3Dmixed",
            Value::Null,
            Mode::Whole,
        ),
        json_req(
            "list-budgets",
            "GET",
            "/apis/policy/v1/namespaces/diff/poddisruptionbudgets",
            Value::Null,
            Mode::Whole,
        ),
        Request {
            name: "table",
            method: "GET",
            // Without the ReplicaSet's pods, whose generated names differ between the servers.
            path: "/api/v1/namespaces/diff/pods?labelSelector=app%21%3Dmixed",
            accept: "application/json;as=Table;v=v1;g=meta.k8s.io",
            content_type: "application/json",
            body: Value::Null,
            mode: Mode::Whole,
        },
        json_req("get-missing", "GET", "/api/v1/namespaces/diff/pods/nope", Value::Null, Mode::Whole),
        // What both servers refuse, and how (D34).
        json_req(
            "list-unsupported-field-label",
            "GET",
            "/api/v1/pods?fieldSelector=spec.foo%3Dx",
            Value::Null,
            Mode::Whole,
        ),
        json_req(
            "list-unparsable-label-selector",
            "GET",
            "/api/v1/namespaces/diff/pods?labelSelector=app%3D%28%28",
            Value::Null,
            Mode::Whole,
        ),
        json_req(
            "list-bad-resource-version",
            "GET",
            "/api/v1/namespaces/diff/pods?resourceVersion=abc",
            Value::Null,
            Mode::Whole,
        ),
        Request {
            name: "create-in-an-unknown-media-type",
            method: "POST",
            path: "/api/v1/namespaces/diff/configmaps",
            accept: "application/json",
            content_type: "text/xml",
            body: json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "xml"}}),
            mode: Mode::Whole,
        },
        Request {
            name: "patch-in-no-patch-type",
            method: "PATCH",
            path: "/api/v1/namespaces/diff/pods/api-1",
            accept: "application/json",
            content_type: "application/json",
            body: json!({"metadata": {"labels": {"patched": "yes"}}}),
            mode: Mode::Whole,
        },
        json_req(
            "create-conflict",
            "POST",
            "/api/v1/namespaces/diff/pods",
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1", "namespace": "diff"},
                   "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]}}),
            Mode::Whole,
        ),
        json_req(
            "create-invalid",
            "POST",
            "/api/v1/namespaces/diff/pods",
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "empty", "namespace": "diff"}, "spec": {"containers": []}}),
            Mode::Whole,
        ),
        json_req(
            "evict-two-budgets",
            "POST",
            "/api/v1/namespaces/diff/pods/api-1/eviction",
            eviction("api-1"),
            Mode::Whole,
        ),
        json_req(
            "evict-refused",
            "POST",
            "/api/v1/namespaces/diff/pods/strict-1/eviction",
            eviction("strict-1"),
            Mode::Whole,
        ),
        json_req(
            "evict-beside-a-controller",
            "POST",
            "/api/v1/namespaces/diff/pods/mixed-bare/eviction",
            eviction("mixed-bare"),
            Mode::Whole,
        ),
        json_req(
            "evict-bare-max-unavailable",
            "POST",
            "/api/v1/namespaces/diff/pods/loose-1/eviction",
            eviction("loose-1"),
            Mode::Whole,
        ),
        json_req("evict-missing", "POST", "/api/v1/namespaces/diff/pods/nope/eviction", eviction("nope"), Mode::Whole),
        json_req("discovery-storage", "GET", "/apis/storage.k8s.io/v1", Value::Null, Mode::Subset),
        json_req(
            "evict-stale-uid",
            "POST",
            "/api/v1/namespaces/diff/pods/stale-1/eviction",
            json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "stale-1", "namespace": "diff"},
                   "deleteOptions": {"preconditions": {"uid": "00000000-0000-0000-0000-000000000000"}}}),
            Mode::Whole,
        ),
        json_req(
            "evict-after-a-stale-uid",
            "POST",
            "/api/v1/namespaces/diff/pods/stale-2/eviction",
            eviction("stale-2"),
            Mode::Whole,
        ),
        Request {
            name: "json-patch-test-fails",
            method: "PATCH",
            path: "/api/v1/namespaces/diff/pods/api-1",
            accept: "application/json",
            content_type: "application/json-patch+json",
            body: json!([{"op": "test", "path": "/metadata/labels/app", "value": "nope"},
                         {"op": "add", "path": "/metadata/labels/patched", "value": "yes"}]),
            mode: Mode::Whole,
        },
        Request {
            name: "json-patch-not-a-list",
            method: "PATCH",
            path: "/api/v1/namespaces/diff/pods/api-1",
            accept: "application/json",
            content_type: "application/json-patch+json",
            body: json!({"op": "add", "path": "/metadata/labels/patched", "value": "yes"}),
            mode: Mode::Whole,
        },
        json_req("delete-namespace", "DELETE", "/api/v1/namespaces/ending", Value::Null, Mode::Whole),
        json_req(
            "evict-in-terminating-namespace",
            "POST",
            "/api/v1/namespaces/ending/pods/held/eviction",
            json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "held", "namespace": "ending"}}),
            Mode::Whole,
        ),
        json_req(
            "evict-allowed",
            "POST",
            "/api/v1/namespaces/diff/pods/web-1/eviction",
            eviction("web-1"),
            Mode::Whole,
        ),
        Request {
            name: "cordon",
            method: "PATCH",
            path: "/api/v1/nodes/worker-2",
            accept: "application/json",
            content_type: "application/strategic-merge-patch+json",
            body: json!({"spec": {"unschedulable": true}}),
            mode: Mode::Whole,
        },
        json_req(
            "watch-from-the-past",
            "GET",
            "/api/v1/namespaces/diff/pods?watch=true&resourceVersion=1&timeoutSeconds=1",
            Value::Null,
            Mode::FirstEvent,
        ),
    ]
}

/// Values that differ by nature between two servers: identities, times, addresses, tokens.
const VOLATILE: &[&str] = &[
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "deletionTimestamp",
    "lastTransitionTime",
    "lastHeartbeatTime",
    "lastProbeTime",
    "startTime",
    "startedAt",
    "podIP",
    "podIPs",
    "hostIP",
    "hostIPs",
    "continue",
    "observedGeneration",
    "containerID",
    "imageID",
];

fn normalize(v: &mut Value) {
    // A Table's Age column is the clock's, like creationTimestamp.
    let ages: Vec<usize> = v
        .get("columnDefinitions")
        .and_then(Value::as_array)
        .map(|cols| cols.iter().enumerate().filter(|(_, c)| c["name"] == "Age").map(|(i, _)| i).collect())
        .unwrap_or_default();
    if let Some(rows) = v.get_mut("rows").and_then(Value::as_array_mut) {
        for row in rows {
            for &i in &ages {
                if let Some(cell) = row.get_mut("cells").and_then(|c| c.get_mut(i)) {
                    *cell = Value::String("<volatile>".into());
                }
            }
        }
    }
    match v {
        Value::Object(map) => {
            map.remove("managedFields");
            for (k, value) in map.iter_mut() {
                if VOLATILE.contains(&k.as_str()) {
                    *value = Value::String("<volatile>".into());
                } else {
                    normalize(value);
                }
            }
            // Lists in name order: the two servers need not agree on storage order.
            if let Some(Value::Array(items)) = map.get_mut("items") {
                items.sort_by_key(|i| i.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string());
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize),
        _ => {}
    }
}

fn diff(path: &str, real: &Value, sim: &Value, out: &mut Vec<String>) {
    match (real, sim) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, av) in a {
                let p = format!("{path}/{k}");
                match b.get(k) {
                    Some(bv) => diff(&p, av, bv, out),
                    None => out.push(format!("{p}: only the apiserver has {}", short(av))),
                }
            }
            for (k, bv) in b {
                if !a.contains_key(k) {
                    out.push(format!("{path}/{k}: only the simulator has {}", short(bv)));
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (av, bv)) in a.iter().zip(b).enumerate() {
                diff(&format!("{path}/{i}"), av, bv, out);
            }
        }
        _ if real == sim => {}
        _ => out.push(format!("{path}: apiserver {} / simulator {}", short(real), short(sim))),
    }
}

/// For discovery: each entry the simulator lists, compared with the apiserver's entry of the
/// same name.
fn diff_subset(real: &Value, sim: &Value, out: &mut Vec<String>) {
    let (key, list) = if sim.get("resources").is_some() { ("name", "resources") } else { ("name", "groups") };
    let empty = vec![];
    let reals = real[list].as_array().unwrap_or(&empty);
    for entry in sim[list].as_array().unwrap_or(&empty) {
        let name = entry[key].as_str().unwrap_or_default();
        match reals.iter().find(|r| r[key] == entry[key]) {
            Some(r) => {
                let mut r = r.clone();
                let mut e = entry.clone();
                for v in [&mut r, &mut e] {
                    if let Some(verbs) = v.get_mut("verbs").and_then(Value::as_array_mut) {
                        verbs.sort_by_key(|x| x.as_str().unwrap_or("").to_string());
                    }
                }
                diff(&format!("/{list}/{name}"), &r, &e, out);
            }
            None => out.push(format!("/{list}/{name}: only the simulator has {}", short(entry))),
        }
    }
    for k in ["kind", "apiVersion", "groupVersion"] {
        diff(&format!("/{k}"), &real[k], &sim[k], out);
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 160 { format!("{}…", s.chars().take(160).collect::<String>()) } else { s }
}

#[derive(Deserialize)]
struct Accepted {
    request: String,
    path: String,
    reason: String,
}

#[test]
fn accepted_paths_match_as_documented() {
    assert!(matches("**/metadata/generation", "/items/3/metadata/generation"));
    assert!(matches("**/metadata/generation", "/metadata/generation"));
    assert!(matches("/rows/*/cells/5", "/rows/0/cells/5"));
    assert!(!matches("/rows/*/cells/5", "/rows/0/cells/4"));
    assert!(matches("/status/**", "/status/nodeInfo/bootID"));
    assert!(!matches("/status/**", "/spec/unschedulable"));
}

/// `*` matches one path segment, `**` any number of them (none included).
fn matches(pattern: &str, path: &str) -> bool {
    fn go(p: &[&str], s: &[&str]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some((&"**", rest)) => (0..=s.len()).any(|i| go(rest, &s[i..])),
            Some((seg, rest)) => s.split_first().is_some_and(|(x, srest)| (*seg == "*" || seg == x) && go(rest, srest)),
        }
    }
    let p: Vec<&str> = pattern.split('/').filter(|x| !x.is_empty()).collect();
    let s: Vec<&str> = path.split('/').filter(|x| !x.is_empty()).collect();
    go(&p, &s)
}

fn wait_ready(ep: &Endpoint, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, pods) = ep.json("GET", "/api/v1/namespaces/diff/pods", &Value::Null);
        let (_, budgets) = ep.json("GET", "/apis/policy/v1/namespaces/diff/poddisruptionbudgets", &Value::Null);
        let pods_ready = pods["items"].as_array().is_some_and(|ps| {
            ps.len() == 11
                && ps.iter().all(|p| {
                    p["status"]["conditions"]
                        .as_array()
                        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
                })
        });
        // The disruption controller has counted every pod once they are Ready.
        let budgets_seen = budgets["items"].as_array().is_some_and(|bs| {
            bs.len() == 7
                && bs.iter().all(|b| {
                    b["status"]["observedGeneration"] == b["metadata"]["generation"]
                        && b["status"]["currentHealthy"].as_i64() > Some(0)
                })
        });
        if pods_ready && budgets_seen {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: pods or budgets not settled: {pods} {budgets}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

const SCENARIO: &str = r#"
name: differential
description: the real control plane's nodes, for the differential test
cluster: {version: "VERSION", distro: kubeadm, etcdVersion: "3.6.5-0"}
timings: {podStartSeconds: 0, nodeRestartSeconds: 1, defaultGraceSeconds: 0}
nodePools:
  - name: control-plane-1
    count: 1
    roles: [control-plane]
    taints: [{key: node-role.kubernetes.io/control-plane, effect: NoSchedule}]
  - {name: worker, count: 2, roles: [worker]}
"#;

#[test]
fn the_simulator_answers_as_the_real_apiserver_does() {
    let v = versions();
    if !available("the_simulator_answers_as_the_real_apiserver_does", &v[..1]) {
        return;
    }
    let cluster = RealCluster::up("differential", &Options { version: &v[0], workers: 2, ..Options::default() });
    let pki = cluster.dir.join("pki");
    let read = |f: &str| std::fs::read_to_string(pki.join(f)).unwrap();
    let state = std::fs::read_to_string(cluster.dir.join("state")).unwrap();
    let port: u16 = state.lines().rev().find_map(|l| l.strip_prefix("APISERVER_PORT=")).unwrap().parse().unwrap();
    let real = Endpoint {
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        tls: client_config(&read("ca.crt"), &read("admin.crt"), &read("admin.key")),
    };

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let scenario = Scenario::parse("differential", &SCENARIO.replace("VERSION", &v[0])).unwrap();
    let catalog = Arc::new(Catalog::embedded().unwrap());
    let running = rt
        .block_on(sim::start(scenario, catalog, SimOptions { time_scale: 0.1, ..Default::default() }))
        .expect("the simulator starts");
    let admin = running.issue_client_cert(sim::ADMIN_USER, &[sim::ADMIN_GROUP.to_string()]).unwrap();
    let simulated =
        Endpoint { addr: running.addr, tls: client_config(running.ca_pem().unwrap(), &admin.cert_pem, &admin.key_pem) };

    for (path, object) in setup_objects() {
        for (side, ep) in [("apiserver", &real), ("simulator", &simulated)] {
            let (code, body) = ep.json("POST", path, &object);
            assert_eq!(code, 201, "{side}: POST {path}: {body}");
        }
    }
    wait_ready(&real, "apiserver");
    wait_ready(&simulated, "simulator");

    let accepted: Vec<Accepted> =
        serde_saphyr::from_str(include_str!("accepted-differences.yaml")).expect("accepted-differences.yaml");
    let mut used = vec![false; accepted.len()];
    let mut failures = Vec::new();
    for r in requests() {
        let body = if r.body.is_null() { String::new() } else { r.body.to_string() };
        let (real_code, real_body) = real.call(r.method, r.path, r.accept, r.content_type, &body);
        let (sim_code, sim_body) = simulated.call(r.method, r.path, r.accept, r.content_type, &body);
        let mut found = Vec::new();
        if real_code != sim_code {
            found.push(format!("/code: apiserver {real_code} / simulator {sim_code}"));
        }
        let parse = |text: &str| -> Value {
            let text = if r.mode == Mode::FirstEvent { text.lines().next().unwrap_or("") } else { text };
            let mut v = serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()));
            normalize(&mut v);
            v
        };
        let (a, b) = (parse(&real_body), parse(&sim_body));
        match r.mode {
            Mode::Subset => diff_subset(&a, &b, &mut found),
            Mode::Whole | Mode::FirstEvent => diff("", &a, &b, &mut found),
        }
        for d in found {
            let path = d.split(':').next().unwrap_or_default();
            match accepted.iter().position(|a| (a.request == "*" || a.request == r.name) && matches(&a.path, path)) {
                Some(i) => used[i] = true,
                None => failures.push(format!("{} {} {}: {d}", r.name, r.method, r.path)),
            }
        }
    }
    for (a, used) in accepted.iter().zip(&used) {
        if !used {
            failures.push(format!(
                "accepted difference no longer seen (remove it): {} {} ({})",
                a.request, a.path, a.reason
            ));
        }
    }
    rt.block_on(async { drop(running) });
    assert!(failures.is_empty(), "{} difference(s):\n{}", failures.len(), failures.join("\n"));
}
