//! Reaching clusters as real ones are reached: HTTPS with the cluster's CA, each kind of
//! kubeconfig credential, the errors that name server and cause, RBAC enforced by the simulator,
//! the least-privilege roles `k8s-upgrade rbac` prints (each rule needed), the permission
//! preflights, and no credential in any output, journal or events file.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use base64::Engine;
use k8s_upgrade::sim::{self, Credential, Scenario};
use serde_json::{Value, json};

use crate::common::{stderr, stdout};
use crate::sim::{Cluster, kubectl_available};

const PLANNER_TOKEN: &str = "planner-token-5f1e2d3c4b5a69788796a5b4";
const ADMIN_TOKEN: &str = "admin-token-0a1b2c3d4e5f60718293a4b5";

/// A kubeadm 1.24 cluster (it still serves deprecated group-versions, so the plan reads them),
/// with a token admin, a token planner, a certificate operator and a ServiceAccount.
fn scenario() -> Scenario {
    Scenario::parse(
        "access",
        &format!(
            r#"
name: access
cluster: {{ version: "1.24.17", distro: kubeadm }}
timings: {{ nodeRestartSeconds: 1, podStartSeconds: 0.5, apiserverRestartSeconds: 0.5, volumeDetachSeconds: 60 }}
nodePools:
  - {{ name: cp, count: 1, roles: [control-plane], taints: [{{ key: node-role.kubernetes.io/control-plane, effect: NoSchedule }}] }}
  - {{ name: w, count: 2, roles: [worker] }}
addons:
  - {{ name: kube-proxy, version: "1.24.17" }}
  - {{ name: cert-manager, version: "1.9.1" }}
workloads:
  - {{ kind: Deployment, name: web, replicas: 2, pdb: {{ maxUnavailable: 1 }} }}
  - {{ kind: StatefulSet, name: db, replicas: 1, blockVolume: 1Gi }}
access:
  users:
    - {{ name: token-admin, token: "{ADMIN_TOKEN}" }}
    - {{ name: planner, token: "{PLANNER_TOKEN}" }}
    - {{ name: operator, groups: [ops] }}
manifests: |
  apiVersion: rbac.authorization.k8s.io/v1
  kind: ClusterRoleBinding
  metadata: {{ name: token-admin }}
  roleRef: {{ apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin }}
  subjects: [{{ kind: User, apiGroup: rbac.authorization.k8s.io, name: token-admin }}]
"#
        ),
    )
    .unwrap()
}

/// [`scenario`] with one more ServiceAccount and its token.
fn scenario_with_service_account(namespace: &str, name: &str, token: &str) -> Scenario {
    let mut s = scenario();
    s.access.service_accounts.push(k8s_upgrade::sim::scenario::AccessServiceAccount {
        namespace: namespace.into(),
        name: name.into(),
        token: token.into(),
    });
    s
}

fn cluster() -> Cluster {
    Cluster::start(scenario(), 0.05)
}

fn running(c: &Cluster) -> &sim::Running {
    c.running.as_ref().unwrap()
}

/// Writes a kubeconfig for `cred` into the cluster's dir and returns its path.
fn kubeconfig_for(c: &Cluster, name: &str, cred: &Credential) -> PathBuf {
    let path = c.dir.join(name);
    running(c).write_kubeconfig_for(&path, cred).unwrap();
    path
}

/// Edits a kubeconfig's YAML (as a JSON value) and writes it next to the original.
fn edit_kubeconfig(from: &Path, to: &Path, edit: impl FnOnce(&mut Value)) -> PathBuf {
    let mut v: Value = serde_saphyr::from_str(&std::fs::read_to_string(from).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(to, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    to.to_path_buf()
}

/// Fails if a token of the scenario or a credential of any kubeconfig the test wrote appears in
/// `texts` (the files the test wrote are searched when the cluster is dropped).
fn assert_no_secrets(c: &Cluster, texts: &[&str]) {
    c.assert_no_credentials(texts);
    for t in texts {
        assert!(!t.contains(PLANNER_TOKEN) && !t.contains(ADMIN_TOKEN), "a scenario token leaked");
    }
}

/// Runs the binary with an isolated HOME and no inherited kubeconfig settings.
fn tool(c: &Cluster, args: &[&str]) -> Output {
    tool_cmd(c, args).output().expect("run k8s-upgrade")
}

fn tool_cmd(c: &Cluster, args: &[&str]) -> Command {
    let mut cmd = crate::common::command();
    cmd.env("HOME", c.dir.join("home")).args(args).stdin(Stdio::null());
    cmd
}

fn plan_with(c: &Cluster, kubeconfig: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["plan", "--kubeconfig", kubeconfig.to_str().unwrap(), "--to", "1.25"];
    args.extend_from_slice(extra);
    tool(c, &args)
}

/// `apply --to 1.25` with the sim upgrader, unattended, events in the cluster's dir.
fn apply_cmd(c: &Cluster, kubeconfig: &Path, events: &Path) -> Command {
    let mut cmd = tool_cmd(c, &["apply", "--to", "1.25", "--yes", "--upgrader", "sim", "--gate-passes", "1"]);
    cmd.arg("--kubeconfig").arg(kubeconfig).arg("--events").arg(events);
    cmd
}

fn apply_with(c: &Cluster, kubeconfig: &Path, tag: &str) -> Output {
    let mut cmd = apply_cmd(c, kubeconfig, &c.dir.join(format!("events-{tag}.jsonl")));
    cmd.arg("--journal").arg(c.dir.join(format!("journal-{tag}.json")));
    cmd.output().expect("run apply")
}

/// Every user the simulator authorized a request for.
fn users_seen(c: &Cluster) -> Vec<String> {
    c.stats()["authorizations"].as_array().unwrap().iter().map(|a| a["user"].as_str().unwrap().to_string()).collect()
}

fn ok_plan(o: &Output) -> bool {
    matches!(o.status.code(), Some(0) | Some(3)) && !stdout(o).contains("READ_FORBIDDEN")
}

#[test]
fn ca_and_client_certificate_reach_the_https_simulator_for_paths_plan_inventory_and_apply() {
    let c = cluster();
    let text = std::fs::read_to_string(&c.kubeconfig).unwrap();
    assert!(text.contains("server: https://127.0.0.1:"), "{text}");
    assert!(text.contains("certificate-authority-data:") && text.contains("client-certificate-data:"), "{text}");
    assert!(!text.contains("token:"), "the default kubeconfig carries only a CA and a client certificate");
    let paths = tool(&c, &["paths", "--distro", "kubeadm", "--from", "1.24.17", "--to", "1.25"]);
    assert_eq!(paths.status.code(), Some(0), "{}", stderr(&paths));
    let plan = plan_with(&c, &c.kubeconfig, &[]);
    assert!(ok_plan(&plan), "{}\n{}", stdout(&plan), stderr(&plan));
    let inv = tool(&c, &["inventory", "--kubeconfig", c.kubeconfig.to_str().unwrap()]);
    assert_eq!(inv.status.code(), Some(0), "{}", stderr(&inv));
    assert!(stdout(&inv).contains("serverVersion"), "{}", stdout(&inv));
    let apply = apply_with(&c, &c.kubeconfig, "cert");
    assert_eq!(apply.status.code(), Some(0), "{}\n{}", stdout(&apply), stderr(&apply));
    assert_eq!(c.stats()["unauthorized"], 0);
    assert_no_secrets(
        &c,
        &[&stdout(&plan), &stderr(&plan), &stdout(&inv), &stderr(&inv), &stdout(&apply), &stderr(&apply)],
    );
}

#[test]
fn a_bearer_token_and_an_exec_plugin_reach_it_too() {
    let c = cluster();
    let token = kubeconfig_for(&c, "token.kubeconfig", &Credential::Token(ADMIN_TOKEN.into()));
    let plan = plan_with(&c, &token, &[]);
    assert!(ok_plan(&plan), "{}\n{}", stdout(&plan), stderr(&plan));
    let apply = apply_with(&c, &token, "token");
    assert_eq!(apply.status.code(), Some(0), "{}\n{}", stdout(&apply), stderr(&apply));

    // The way EKS, GKE and AKS kubeconfigs authenticate: a plugin prints an ExecCredential.
    let plugin = c.dir.join("get-token.sh");
    std::fs::write(
        &plugin,
        format!(
            "#!/bin/sh\necho \"$KUBERNETES_EXEC_INFO\" > \"$(dirname \"$0\")/exec-info.out\"\nprintf '{{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"{ADMIN_TOKEN}\",\"expirationTimestamp\":\"2099-01-01T00:00:00Z\"}}}}'\n"
        ),
    )
    .unwrap();
    make_executable(&plugin);
    let exec = edit_kubeconfig(&c.kubeconfig, &c.dir.join("exec.kubeconfig"), |v| {
        v["users"][0]["user"] = json!({"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": plugin.to_str().unwrap(),
            "args": ["eks", "get-token", "--cluster-name", "demo"],
            "interactiveMode": "Never",
            "provideClusterInfo": true,
        }});
    });
    let plan = plan_with(&c, &exec, &[]);
    assert!(ok_plan(&plan), "{}\n{}", stdout(&plan), stderr(&plan));
    let info: Value = serde_json::from_str(&std::fs::read_to_string(c.dir.join("exec-info.out")).unwrap()).unwrap();
    assert_eq!(info["spec"]["interactive"], false, "{info}");
    assert!(info["spec"]["cluster"]["server"].as_str().unwrap().starts_with("https://127.0.0.1:"), "{info}");
    let inv = tool(&c, &["inventory", "--kubeconfig", exec.to_str().unwrap()]);
    assert_eq!(inv.status.code(), Some(0), "{}", stderr(&inv));
    assert_no_secrets(&c, &[&stdout(&plan), &stderr(&plan), &stdout(&apply), &stderr(&apply), &stdout(&inv)]);
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn one_line_error(o: &Output) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "{}\n{err}", stdout(o));
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    lines[0].to_string()
}

#[test]
fn without_the_ca_the_server_is_named_as_unknown_authority_and_skip_verify_passes() {
    let c = cluster();
    let server = format!("https://{}", c.addr());
    let no_ca = edit_kubeconfig(&c.kubeconfig, &c.dir.join("no-ca.kubeconfig"), |v| {
        v["clusters"][0]["cluster"].as_object_mut().unwrap().remove("certificate-authority-data");
    });
    let line = one_line_error(&plan_with(&c, &no_ca, &[]));
    assert!(line.contains(&server) && line.contains("unknown certificate authority"), "{line}");
    let skip = edit_kubeconfig(&no_ca, &c.dir.join("skip.kubeconfig"), |v| {
        v["clusters"][0]["cluster"]["insecure-skip-tls-verify"] = json!(true);
    });
    let o = plan_with(&c, &skip, &[]);
    assert!(ok_plan(&o), "{}\n{}", stdout(&o), stderr(&o));

    // The CA as a file instead of data, with client certificate and key as files too.
    let ca = c.dir.join("ca.crt");
    std::fs::write(&ca, running(&c).ca_pem().unwrap()).unwrap();
    let cert = running(&c).issue_client_cert(sim::ADMIN_USER, &[sim::ADMIN_GROUP.to_string()]).unwrap();
    std::fs::write(c.dir.join("admin.crt"), &cert.cert_pem).unwrap();
    std::fs::write(c.dir.join("admin.key"), &cert.key_pem).unwrap();
    let files = edit_kubeconfig(&c.kubeconfig, &c.dir.join("files.kubeconfig"), |v| {
        v["clusters"][0]["cluster"] = json!({"server": server, "certificate-authority": "ca.crt"});
        v["users"][0]["user"] = json!({"client-certificate": "admin.crt", "client-key": "admin.key"});
    });
    let o = plan_with(&c, &files, &[]);
    assert!(ok_plan(&o), "relative CA and key files resolve beside the kubeconfig: {}", stderr(&o));
}

#[test]
fn each_way_of_failing_names_the_server_and_the_cause_in_one_line() {
    let c = cluster();
    let server = format!("https://{}", c.addr());
    // 401: a token the server does not know.
    let bad = kubeconfig_for(&c, "bad-token.kubeconfig", &Credential::Token("not-a-known-token-123".into()));
    let line = one_line_error(&plan_with(&c, &bad, &[]));
    assert!(line.contains(&server) && line.contains("401"), "{line}");
    assert!(!line.contains("not-a-known-token-123"), "{line}");
    // A client certificate from another CA is a 401 too, as kube-apiserver answers it.
    let foreign = {
        let other = Cluster::start(scenario(), 0.05);
        let cert = running(&other).issue_client_cert(sim::ADMIN_USER, &[sim::ADMIN_GROUP.to_string()]).unwrap();
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        edit_kubeconfig(&c.kubeconfig, &c.dir.join("foreign.kubeconfig"), |v| {
            v["users"][0]["user"] =
                json!({"client-certificate-data": b64(&cert.cert_pem), "client-key-data": b64(&cert.key_pem)});
        })
    };
    let line = one_line_error(&plan_with(&c, &foreign, &[]));
    assert!(line.contains("401"), "{line}");
    // Connection refused: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let refused = edit_kubeconfig(&c.kubeconfig, &c.dir.join("refused.kubeconfig"), |v| {
        v["clusters"][0]["cluster"]["server"] = json!(format!("https://127.0.0.1:{port}"));
    });
    let line = one_line_error(&plan_with(&c, &refused, &[]));
    assert!(line.contains(&format!("https://127.0.0.1:{port}")) && line.contains("connection refused"), "{line}");
    // A server name the certificate does not carry, then fixed with tls-server-name.
    let wrong = edit_kubeconfig(&c.kubeconfig, &c.dir.join("wrong-host.kubeconfig"), |v| {
        v["clusters"][0]["cluster"]["tls-server-name"] = json!("kubernetes.invalid");
    });
    let line = one_line_error(&plan_with(&c, &wrong, &[]));
    assert!(line.contains(&server) && line.contains("not valid for that host name"), "{line}");
    let renamed = edit_kubeconfig(&c.kubeconfig, &c.dir.join("renamed.kubeconfig"), |v| {
        v["clusters"][0]["cluster"]["tls-server-name"] = json!("kubernetes.default.svc");
    });
    let o = plan_with(&c, &renamed, &[]);
    assert!(ok_plan(&o), "tls-server-name names a host the certificate carries: {}", stderr(&o));
    // A plugin that fails prints its exit code and a scrubbed stderr, never its stdout.
    let failing = c.dir.join("failing.sh");
    std::fs::write(
        &failing,
        "#!/bin/sh\necho 'token=SECRET-IN-STDOUT'\necho 'login expired; token=SECRET-IN-STDERR' >&2\nexit 3\n",
    )
    .unwrap();
    make_executable(&failing);
    let exec_kc = |name: &str, command: &Path| {
        edit_kubeconfig(&c.kubeconfig, &c.dir.join(name), |v| {
            v["users"][0]["user"] = json!({"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": command.to_str().unwrap(), "interactiveMode": "Never"}});
        })
    };
    let line = one_line_error(&plan_with(&c, &exec_kc("failing.kubeconfig", &failing), &[]));
    assert!(line.contains(&server) && line.contains("exit code 3") && line.contains("login expired"), "{line}");
    assert!(!line.contains("SECRET-IN"), "{line}");
    // A plugin that hangs is killed at --exec-timeout.
    let hanging = c.dir.join("hanging.sh");
    std::fs::write(&hanging, "#!/bin/sh\nsleep 600\n").unwrap();
    make_executable(&hanging);
    let started = std::time::Instant::now();
    let line = one_line_error(&plan_with(&c, &exec_kc("hanging.kubeconfig", &hanging), &["--exec-timeout", "1s"]));
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "took {:?}", started.elapsed());
    assert!(line.contains("did not finish within 1s") && line.contains("killed"), "{line}");
}

#[test]
fn an_expired_serving_certificate_and_a_silent_server_are_named() {
    let c = Cluster::start_with(
        scenario(),
        sim::SimOptions {
            time_scale: 0.05,
            transport: sim::Transport::Https(sim::tls::ServingCert::Expired),
            ..Default::default()
        },
    );
    let line = one_line_error(&plan_with(&c, &c.kubeconfig, &[]));
    assert!(line.contains(&format!("https://{}", c.addr())) && line.contains("has expired"), "{line}");
    // A server that accepts the connection and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let quiet = edit_kubeconfig(&c.kubeconfig, &c.dir.join("silent.kubeconfig"), |v| {
        v["clusters"][0]["cluster"]["server"] = json!(format!("https://127.0.0.1:{port}"));
    });
    let started = std::time::Instant::now();
    let line = one_line_error(&plan_with(&c, &quiet, &["--connect-timeout", "1s"]));
    assert!(started.elapsed() < std::time::Duration::from_secs(15), "{:?}", started.elapsed());
    assert!(line.contains(&format!("https://127.0.0.1:{port}")) && line.contains("did not answer in time"), "{line}");
    drop(silent);
}

#[test]
fn token_files_merged_kubeconfigs_contexts_and_proxy_url_work_as_kubectl_reads_them() {
    let c = cluster();
    // tokenFile, in a second file merged through KUBECONFIG; the context picks it.
    std::fs::write(c.dir.join("planner.token"), PLANNER_TOKEN).unwrap();
    let second = c.dir.join("second.kubeconfig");
    let server = format!("https://{}", c.addr());
    let ca = base64::engine::general_purpose::STANDARD.encode(running(&c).ca_pem().unwrap());
    std::fs::write(
        &second,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: other\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\ncontexts:\n- name: as-token-admin\n  context: {{cluster: other, user: file-user}}\nusers:\n- name: file-user\n  user:\n    tokenFile: {}\n",
            c.dir.join("admin.token").display()
        ),
    )
    .unwrap();
    std::fs::write(c.dir.join("admin.token"), ADMIN_TOKEN).unwrap();
    let merged = format!("{}:{}", c.kubeconfig.display(), second.display());
    let o = tool_cmd(&c, &["plan", "--to", "1.25", "--context", "as-token-admin"])
        .env("KUBECONFIG", &merged)
        .output()
        .unwrap();
    assert!(ok_plan(&o), "{}\n{}", stdout(&o), stderr(&o));
    let users = users_seen(&c);
    assert!(users.contains(&"token-admin".to_string()), "the merged file's context was used: {users:?}");
    let o = tool_cmd(&c, &["plan", "--to", "1.25", "--context", "nope"]).env("KUBECONFIG", &merged).output().unwrap();
    let line = one_line_error(&o);
    assert!(line.contains("'nope'") && line.contains("as-token-admin"), "{line}");

    // proxy-url: every connection goes through an HTTP CONNECT proxy on loopback.
    let (proxy, connects) = connect_proxy();
    let proxied = edit_kubeconfig(&c.kubeconfig, &c.dir.join("proxied.kubeconfig"), |v| {
        v["clusters"][0]["cluster"]["proxy-url"] = json!(format!("http://{proxy}"));
    });
    let o = plan_with(&c, &proxied, &[]);
    assert!(ok_plan(&o), "{}\n{}", stdout(&o), stderr(&o));
    assert!(connects.load(std::sync::atomic::Ordering::SeqCst) > 0, "the proxy saw no CONNECT");
}

/// A minimal HTTP CONNECT proxy on loopback that only tunnels to loopback; counts tunnels.
fn connect_proxy() -> (std::net::SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(client.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap_or_default();
                let target = line.split_whitespace().nth(1).unwrap_or_default().to_string();
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                }
                let mut client = client;
                if !line.starts_with("CONNECT ") || !target.starts_with("127.0.0.1:") {
                    let _ = client.write_all(b"HTTP/1.1 403 Forbidden\r\n\r\n");
                    return;
                }
                let Ok(upstream) = std::net::TcpStream::connect(&target) else { return };
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
                let (mut c2, mut u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                let mut upstream = upstream;
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut u2, &mut c2);
                    let _ = c2.shutdown(std::net::Shutdown::Both);
                });
                let _ = std::io::copy(&mut client, &mut upstream);
                let _ = upstream.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    (addr, count)
}

#[test]
fn kubectl_works_as_admin_and_the_plan_only_user_cannot_read_secrets() {
    if !kubectl_available("kubectl_works_as_admin_and_the_plan_only_user_cannot_read_secrets") {
        return;
    }
    let c = cluster();
    assert!(c.kubectl_ok(&["get", "nodes"]).contains("w-1"));
    let can = c.kubectl_ok(&["auth", "can-i", "--list"]);
    assert!(can.contains("*.*") && can.contains("[*]"), "{can}");
    let drained = c.kubectl(&["drain", "w-1", "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=60s"]);
    assert!(drained.status.success(), "{}", String::from_utf8_lossy(&drained.stderr));
    // Bind the plan role to the planner with the tool's own YAML, applied by kubectl.
    bind(&c, &["--for", "plan", "--user", "planner"]);
    let planner = kubeconfig_for(&c, "planner.kubeconfig", &Credential::Token(PLANNER_TOKEN.into()));
    let o = Command::new("kubectl")
        .args(["get", "secrets", "-A"])
        .env("HOME", c.dir.join("home"))
        .env("KUBECONFIG", &planner)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("Forbidden") && err.contains("User \"planner\" cannot list resource \"secrets\""), "{err}");
    let o = Command::new("kubectl")
        .args(["get", "nodes"])
        .env("HOME", c.dir.join("home"))
        .env("KUBECONFIG", &planner)
        .output()
        .unwrap();
    assert!(o.status.success(), "the plan role lists nodes: {}", String::from_utf8_lossy(&o.stderr));
}

/// Prints roles with `k8s-upgrade rbac ARGS` and creates them as the admin with `kubectl apply`
/// (or, without kubectl, through the API).
fn bind(c: &Cluster, args: &[&str]) -> String {
    let mut full = vec!["rbac"];
    full.extend_from_slice(args);
    let o = tool(c, &full);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let yaml = stdout(&o);
    let docs: Vec<Value> = serde_saphyr::from_multiple(&yaml).unwrap();
    assert!(!docs.is_empty());
    for d in docs {
        c.create_rbac(&d);
    }
    yaml
}

fn replace_as_admin(c: &Cluster, d: &Value) {
    let kind = d["kind"].as_str().unwrap();
    let name = d["metadata"]["name"].as_str().unwrap();
    let path = match (kind, d.pointer("/metadata/namespace").and_then(Value::as_str)) {
        ("Role", Some(ns)) => format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles/{name}"),
        _ => format!("/apis/rbac.authorization.k8s.io/v1/clusterroles/{name}"),
    };
    let (status, body) = c.http("PUT", &path, "application/json", &d.to_string());
    assert_eq!(status, 200, "{body}");
}

/// Mutating requests the simulator saw (besides access reviews).
fn mutations(c: &Cluster) -> Vec<String> {
    c.stats()["requests"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| {
            let verb = k.split_whitespace().next().unwrap_or_default();
            matches!(verb, "create" | "update" | "patch" | "delete" | "evict" | "deletecollection")
                && !k.contains("review")
        })
        .cloned()
        .collect()
}

#[test]
fn the_shipped_roles_suffice_every_rule_is_used_and_each_missing_rule_is_named() {
    let c = cluster();
    let plan_yaml = bind(&c, &["--for", "plan", "--user", "planner", "--group", "ops"]);
    let apply_yaml = bind(&c, &["--for", "apply", "--upgrader", "sim", "--group", "ops"]);
    let planner = kubeconfig_for(&c, "planner.kubeconfig", &Credential::Token(PLANNER_TOKEN.into()));
    let operator = kubeconfig_for(
        &c,
        "operator.kubeconfig",
        &Credential::ClientCert { user: "operator".into(), groups: vec!["ops".into()] },
    );

    // Rules of each role, as printed.
    let roles = |yaml: &str| -> Vec<Value> {
        serde_saphyr::from_multiple::<Value>(yaml)
            .unwrap()
            .into_iter()
            .filter(|d| d["kind"].as_str().is_some_and(|k| k.ends_with("Role")))
            .collect()
    };
    let plan_roles = roles(&plan_yaml);
    let apply_roles = roles(&apply_yaml);

    // Each single rule removed: plan names it as a finding, apply refuses before changing anything.
    for role in plan_roles.iter() {
        for i in 0..role["rules"].as_array().unwrap().len() {
            let mut narrowed = role.clone();
            let removed = narrowed["rules"].as_array_mut().unwrap().remove(i);
            replace_as_admin(&c, &narrowed);
            let o = plan_with(&c, &planner, &[]);
            let out = stdout(&o);
            assert!(
                out.contains("READ_FORBIDDEN") || out.contains("could not read"),
                "plan without {removed} must say what it could not read:\n{out}\n{}",
                stderr(&o)
            );
            let verb = removed["verbs"][0].as_str().unwrap();
            let named = removed["resources"]
                .as_array()
                .is_some_and(|rs| rs.iter().any(|r| out.contains(&format!("{verb} {}", r.as_str().unwrap()))))
                || removed["nonResourceURLs"]
                    .as_array()
                    .is_some_and(|us| us.iter().any(|u| out.contains(&format!("{verb} {}", u.as_str().unwrap()))));
            assert!(named, "plan without {removed} names the permission:\n{out}");
            replace_as_admin(&c, role);
        }
    }
    for role in apply_roles.iter() {
        for i in 0..role["rules"].as_array().unwrap().len() {
            let mut narrowed = role.clone();
            let removed = narrowed["rules"].as_array_mut().unwrap().remove(i);
            replace_as_admin(&c, &narrowed);
            let before = mutations(&c);
            let o = apply_with(&c, &operator, &format!("narrowed-{i}"));
            let err = stderr(&o);
            assert_eq!(o.status.code(), Some(1), "apply without {removed}:\n{}\n{err}", stdout(&o));
            let verb = removed["verbs"][0].as_str().unwrap();
            let resource = removed["resources"][0].as_str().unwrap();
            assert!(
                err.contains("nothing was started") && err.contains(&format!("{verb} {resource}")),
                "apply without {removed}: {err}"
            );
            assert_eq!(mutations(&c), before, "apply without {removed} changed nothing");
            replace_as_admin(&c, role);
        }
    }
    assert!(
        c.get_json("/api/v1/nodes")["items"].as_array().unwrap().iter().all(|n| n["spec"]["unschedulable"].is_null()),
        "no node was cordoned"
    );

    // With the roles whole: plan and apply pass, and nothing was refused.
    let plan = plan_with(&c, &planner, &[]);
    assert!(matches!(plan.status.code(), Some(0) | Some(3)), "{}\n{}", stdout(&plan), stderr(&plan));
    let plan_out = stdout(&plan);
    let json = plan_with(&c, &planner, &["-o", "json"]);
    let doc: Value = serde_json::from_str(&stdout(&json)).unwrap();
    let gaps: Vec<&Value> =
        doc["findings"].as_array().unwrap().iter().filter(|f| f["code"] == "READ_FORBIDDEN").collect();
    assert_eq!(gaps.len(), 1, "only Helm releases go unread with the plan role: {gaps:?}");
    assert_eq!(gaps[0]["severity"], "warning");
    assert_eq!(gaps[0]["subject"], "Helm releases");
    assert!(plan_out.contains("list secrets"), "the plan says Helm releases were not read and why:\n{plan_out}");
    let apply = apply_with(&c, &operator, "operator");
    assert_eq!(apply.status.code(), Some(0), "{}\n{}", stdout(&apply), stderr(&apply));

    // Every rule was used by a successful request of the run.
    let stats = c.stats();
    let decisions = stats["authorizations"].as_array().unwrap();
    let allowed = |user: &'static str| decisions.iter().filter(move |d| d["user"] == user && d["allowed"] == true);
    for (role, user) in plan_roles.iter().map(|r| (r, "planner")).chain(apply_roles.iter().map(|r| (r, "operator"))) {
        for rule in role["rules"].as_array().unwrap() {
            let used = allowed(user).chain(allowed("operator")).any(|d| {
                let verb_ok = rule["verbs"].as_array().unwrap().iter().any(|v| v == &d["verb"]);
                let url_ok = rule["nonResourceURLs"].as_array().is_some_and(|us| us.iter().any(|u| u == &d["path"]));
                let res_ok = rule["apiGroups"].as_array().is_some_and(|gs| gs.iter().any(|g| g == &d["group"]))
                    && rule["resources"].as_array().is_some_and(|rs| rs.iter().any(|r| r == &d["resource"]));
                verb_ok && (url_ok || res_ok)
            });
            assert!(used, "rule {rule} of {} was never used:\n{}", role["metadata"]["name"], stderr(&apply));
        }
    }
    assert_no_secrets(&c, &[&stdout(&plan), &stderr(&plan), &stdout(&apply), &stderr(&apply)]);
}

#[test]
fn a_password_in_the_server_url_never_reaches_output_journal_or_events() {
    let c = cluster();
    let with_password = edit_kubeconfig(&c.kubeconfig, &c.dir.join("userinfo.kubeconfig"), |v| {
        let server = v["clusters"][0]["cluster"]["server"]
            .as_str()
            .unwrap()
            .replace("https://", "https://admin:HUNTER2-PASSWORD@");
        v["clusters"][0]["cluster"]["server"] = json!(server);
    });
    let state = c.dir.join("state");
    let o = apply_cmd(&c, &with_password, &c.dir.join("userinfo-events.jsonl"))
        .env("XDG_STATE_HOME", &state)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    let mut seen = vec![stdout(&o), stderr(&o), std::fs::read_to_string(c.dir.join("userinfo-events.jsonl")).unwrap()];
    for entry in std::fs::read_dir(state.join("k8s-upgrade")).unwrap().filter_map(Result::ok) {
        seen.push(entry.file_name().to_string_lossy().into_owned());
        seen.push(std::fs::read_to_string(entry.path()).unwrap());
    }
    assert!(seen.iter().all(|t| !t.contains("HUNTER2")), "the password leaked: {seen:?}");
    assert!(seen[1].contains("<redacted>@127.0.0.1"), "the server is still named: {}", seen[1]);
}

#[test]
fn rbac_prints_valid_yaml_with_a_reason_for_every_rule() {
    let c = cluster();
    for job in ["plan", "apply", "rehearse", "helm-releases", "helm-fix"] {
        let o = tool(&c, &["rbac", "--for", job]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let text = stdout(&o);
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
        let rules: usize = docs.iter().map(|d| d["rules"].as_array().map_or(0, Vec::len)).sum();
        assert!(rules > 0, "{text}");
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("# ") && !l.starts_with("# k8s-upgrade") && !l.starts_with("# RBAC"))
                .count(),
            rules,
            "a reason per rule:\n{text}"
        );
        assert!(docs.iter().all(|d| d["kind"] != "ClusterRoleBinding"), "no subject, no binding");
    }
    let plan = stdout(&tool(&c, &["rbac", "--for", "plan"]));
    assert!(!plan.contains("secrets"), "{plan}");
    let o = tool(&c, &["rbac", "--for", "apply", "--service-account", "nonamespace"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn large_lists_come_gzipped_as_from_an_apiserver_and_the_tool_reads_them() {
    let scenario = Scenario::parse(
        "many",
        "name: many\ncluster: { version: \"1.30.14\", distro: kubeadm }\nnodePools:\n  - { name: w, count: 4, capacity: { pods: 110 } }\nworkloads:\n  - { kind: Deployment, name: web, replicas: 200 }\n",
    )
    .unwrap();
    let c = Cluster::start(scenario, 0.05);
    let raw = crate::sim::https_raw(c.addr(), c.tls.clone(), "GET", "/api/v1/pods", "Accept-Encoding: gzip\r\n", "");
    let head = raw.split("\r\n\r\n").next().unwrap().to_lowercase();
    assert!(head.contains("content-encoding: gzip"), "{head}");
    let plain = crate::sim::https_raw(c.addr(), c.tls.clone(), "GET", "/api/v1/pods", "", "");
    assert!(!plain.to_lowercase().contains("content-encoding: gzip"), "only for clients that accept it");
    let inv = tool(&c, &["inventory", "--kubeconfig", c.kubeconfig.to_str().unwrap(), "-o", "json"]);
    assert_eq!(inv.status.code(), Some(0), "{}", stderr(&inv));
    let doc: Value = serde_json::from_str(&stdout(&inv)).unwrap();
    assert!(doc["cluster"]["pods"].as_array().unwrap().len() >= 200);
}

#[test]
fn service_accounts_anonymous_users_impersonation_and_the_scenario_s_kubeconfig_user() {
    let mut s = scenario_with_service_account("kube-system", "upgrader", "sa-token-7c6b5a4938271605f4e3d2c1");
    s.access.kubeconfig_user = Some("planner".into());
    let c = Cluster::start(s, 0.05);
    // The written kubeconfig acts as the scenario's user: the planner, by its token.
    let text = std::fs::read_to_string(&c.kubeconfig).unwrap();
    assert!(text.contains(PLANNER_TOKEN), "kubeconfigUser picks the credential");
    let o = plan_with(&c, &c.kubeconfig, &[]);
    assert!(stdout(&o).contains("could not read nodes"), "an unbound planner reads nothing: {}", stdout(&o));
    // A ServiceAccount bound to both roles plans and applies.
    bind(&c, &["--for", "plan", "--service-account", "kube-system:upgrader"]);
    bind(&c, &["--for", "apply", "--upgrader", "sim", "--service-account", "kube-system:upgrader"]);
    let sa = kubeconfig_for(&c, "sa.kubeconfig", &Credential::Token("sa-token-7c6b5a4938271605f4e3d2c1".into()));
    let o = plan_with(&c, &sa, &[]);
    assert!(matches!(o.status.code(), Some(0) | Some(3)), "{}", stderr(&o));
    let users = users_seen(&c);
    assert!(users.contains(&"system:serviceaccount:kube-system:upgrader".to_string()), "{users:?}");
    // Nothing presented: system:anonymous may read /version but not list nodes.
    let anon = kubeconfig_for(&c, "anonymous.kubeconfig", &Credential::None);
    let line = one_line_error(&plan_with(&c, &anon, &[]));
    assert!(line.contains("403") && line.contains(r#"User "system:anonymous" cannot get path "/api""#), "{line}");
    let (status, body) =
        crate::sim::https_request(c.addr(), crate::sim::tls_client(running(&c), None), "GET", "/api/v1/nodes", "", "");
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains(
            r#"User \"system:anonymous\" cannot list resource \"nodes\" in API group \"\" at the cluster scope"#
        ),
        "{body}"
    );
    let (status, _) =
        crate::sim::https_request(c.addr(), crate::sim::tls_client(running(&c), None), "GET", "/version", "", "");
    assert_eq!(status, 200);
    // A bad token is 401 with the apiserver's exact body.
    let (status, body) = crate::sim::https_request(
        c.addr(),
        crate::sim::tls_client(running(&c), None),
        "GET",
        "/version",
        "Authorization: Bearer nope-nope-nope\r\n",
        "",
    );
    assert_eq!(status, 401);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401})
    );
    // Impersonation: the admin may act as the planner; the planner may not act as anyone.
    let admin = crate::sim::tls_client(running(&c), Some((sim::ADMIN_USER, &[sim::ADMIN_GROUP.to_string()])));
    let (status, body) =
        crate::sim::https_request(c.addr(), admin, "GET", "/api/v1/secrets", "Impersonate-User: planner\r\n", "");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains(r#"User \"planner\" cannot list resource \"secrets\""#), "{body}");
    let (status, body) = crate::sim::https_request(
        c.addr(),
        crate::sim::tls_client(running(&c), None),
        "GET",
        "/api/v1/nodes",
        &format!("Authorization: Bearer {PLANNER_TOKEN}\r\nImpersonate-User: kubernetes-admin\r\n"),
        "",
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("cannot impersonate resource \\\"users\\\""), "{body}");
}

#[test]
fn rbac_holds_against_escalation_namespaced_paths_deleted_namespaces_and_service_accounts() {
    let c = Cluster::start(
        scenario_with_service_account("default", "short-lived", "sa-token-0f1e2d3c4b5a69788796a5b4"),
        0.05,
    );
    let admin = c.tls.clone();
    let as_planner = |method: &str, path: &str, body: &str| {
        crate::sim::https_request(
            c.addr(),
            crate::sim::tls_client(running(&c), None),
            method,
            path,
            &format!("Authorization: Bearer {PLANNER_TOKEN}\r\nContent-Type: application/json\r\n"),
            body,
        )
    };
    let post = |path: &str, body: &Value| {
        let (status, text) = crate::sim::https_request(
            c.addr(),
            admin.clone(),
            "POST",
            path,
            "Content-Type: application/json\r\n",
            &body.to_string(),
        );
        assert_eq!(status, 201, "{path}: {text}");
    };
    // The planner administers the namespace team-a (the default `admin` role, by a RoleBinding).
    post("/api/v1/namespaces", &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}));
    let binding = |name: &str, role: &str| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": name, "namespace": "team-a"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "planner"}]})
    };
    post("/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/rolebindings", &binding("planner-admin", "admin"));
    assert_eq!(as_planner("GET", "/api/v1/namespaces/team-a/pods", "").0, 200);
    // It may not bind cluster-admin there, nor write a role granting more than it holds.
    let (status, body) = as_planner(
        "POST",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/rolebindings",
        &binding("escalate", "cluster-admin").to_string(),
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("attempting to grant RBAC permissions not currently held"), "{body}");
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "wide", "namespace": "team-a"},
        "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]});
    assert_eq!(
        as_planner("POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/roles", &role.to_string()).0,
        403
    );
    // Nor reach a cluster-scoped resource through a namespaced path, even with every permission
    // in the namespace (the admin binds cluster-admin there for it).
    post("/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/rolebindings", &binding("planner-all", "cluster-admin"));
    let crb = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "sneaky"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "planner"}]});
    assert_eq!(
        as_planner(
            "POST",
            "/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/clusterrolebindings",
            &crb.to_string()
        )
        .0,
        404
    );
    assert_eq!(as_planner("GET", "/api/v1/namespaces/team-a/nodes/w-1", "").0, 404);
    assert_eq!(
        c.http("GET", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/sneaky", "application/json", "").0,
        404
    );
    // A named `?watch=1` is a get, not a watch: a watch-only grant does not read objects.
    assert_eq!(as_planner("GET", "/api/v1/nodes/w-1?watch=1", "").0, 403);
    // Deleting the namespace takes its RoleBinding with it, at once.
    let (status, _) = crate::sim::https_request(c.addr(), admin.clone(), "DELETE", "/api/v1/namespaces/team-a", "", "");
    assert_eq!(status, 200);
    post("/api/v1/namespaces", &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}));
    assert_eq!(as_planner("GET", "/api/v1/namespaces/team-a/pods", "").0, 403);
    // A ServiceAccount's token stops working when the ServiceAccount is deleted.
    let sa_get = || {
        crate::sim::https_request(
            c.addr(),
            crate::sim::tls_client(running(&c), None),
            "GET",
            "/version",
            "Authorization: Bearer sa-token-0f1e2d3c4b5a69788796a5b4\r\n",
            "",
        )
        .0
    };
    assert_eq!(sa_get(), 200);
    let (status, _) = crate::sim::https_request(
        c.addr(),
        admin,
        "DELETE",
        "/api/v1/namespaces/default/serviceaccounts/short-lived",
        "",
        "",
    );
    assert_eq!(status, 200);
    assert_eq!(sa_get(), 401);
}

#[test]
fn the_plain_http_debugging_mode_still_authenticates() {
    let c = Cluster::start_with(
        scenario(),
        sim::SimOptions { time_scale: 0.05, transport: sim::Transport::PlainHttp, ..Default::default() },
    );
    let text = std::fs::read_to_string(&c.kubeconfig).unwrap();
    assert!(text.contains("server: http://") && text.contains("token:"), "plain HTTP carries the admin's token");
    let o = plan_with(&c, &c.kubeconfig, &[]);
    assert!(ok_plan(&o), "{}\n{}", stdout(&o), stderr(&o));
    let anon = kubeconfig_for(&c, "anonymous.kubeconfig", &Credential::None);
    let line = one_line_error(&plan_with(&c, &anon, &[]));
    assert!(line.contains("403"), "{line}");
}

/// `apply --upgrader kubeadm` as a user bound to the printed roles: the node-job rules (pods and
/// pods/log in kube-system only) are each needed before anything changes, and each is used.
#[test]
fn the_kubeadm_upgrader_needs_exactly_its_node_job_rules_and_uses_each() {
    let mut s = scenario();
    // kubeadm moves kube-proxy itself; other add-ons would be the operator's.
    s.addons.retain(|a| a.name == "kube-proxy");
    let c = Cluster::start(s, 0.05);
    bind(&c, &["--for", "plan", "--group", "ops"]);
    let apply_yaml = bind(&c, &["--for", "apply", "--upgrader", "kubeadm", "--group", "ops"]);
    let operator = kubeconfig_for(
        &c,
        "operator.kubeconfig",
        &Credential::ClientCert { user: "operator".into(), groups: vec!["ops".into()] },
    );
    let run = |tag: &str| -> Output {
        tool_cmd(&c, &["apply", "--to", "1.25", "--yes", "--upgrader", "kubeadm", "--gate-passes", "1"])
            .arg("--kubeconfig")
            .arg(&operator)
            .arg("--journal")
            .arg(c.dir.join(format!("journal-{tag}.json")))
            .output()
            .expect("run apply")
    };
    let docs: Vec<Value> = serde_saphyr::from_multiple(&apply_yaml).unwrap();
    let role = docs
        .iter()
        .find(|d| d["kind"] == "Role" && d["metadata"]["namespace"] == "kube-system")
        .expect("a Role in kube-system")
        .clone();
    let node_job_rules: Vec<usize> = role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .filter(|(_, r)| r["resources"].as_array().unwrap().iter().any(|x| x == "pods" || x == "pods/log"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(node_job_rules.len(), 2, "pods and pods/log: {role}");
    for i in node_job_rules {
        let mut narrowed = role.clone();
        let removed = narrowed["rules"].as_array_mut().unwrap().remove(i);
        replace_as_admin(&c, &narrowed);
        let before = mutations(&c);
        let o = run(&format!("narrowed-{i}"));
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "apply without {removed}:\n{}\n{err}", stdout(&o));
        let resource = removed["resources"][0].as_str().unwrap();
        assert!(
            err.contains("nothing was started") && err.contains(&format!("{resource} in kube-system")),
            "apply without {removed}: {err}"
        );
        assert_eq!(mutations(&c), before, "apply without {removed} changed nothing");
        replace_as_admin(&c, &role);
    }
    let o = run("whole");
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    let stats = c.stats();
    let decisions = stats["authorizations"].as_array().unwrap();
    for rule in role["rules"].as_array().unwrap() {
        let used = decisions.iter().any(|d| {
            d["user"] == "operator"
                && d["allowed"] == true
                && rule["verbs"].as_array().unwrap().iter().any(|v| v == &d["verb"])
                && rule["resources"].as_array().unwrap().iter().any(|r| r == &d["resource"])
        });
        assert!(used, "rule {rule} was never used");
    }
    assert!(
        c.get_json("/api/v1/nodes")["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["status"]["nodeInfo"]["kubeletVersion"].as_str().unwrap().starts_with("v1.25.")),
        "every node upgraded through its job"
    );
}

#[test]
fn the_rehearse_role_lets_a_rehearsal_time_node_restarts_from_events_and_without_it_says_so() {
    let c = cluster();
    bind(&c, &["--for", "plan", "--user", "planner"]);
    let planner = kubeconfig_for(&c, "planner.kubeconfig", &Credential::Token(PLANNER_TOKEN.into()));
    let rehearse = |c: &Cluster| -> Value {
        let o = tool(c, &["rehearse", "--kubeconfig", planner.to_str().unwrap(), "--to", "1.25", "-o", "json"]);
        assert_no_secrets(c, &[&stdout(&o), &stderr(&o)]);
        serde_json::from_str(&stdout(&o)).unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(&o), stderr(&o)))
    };
    // Two workers restarted within the hour, as their kubelets and the node controller report
    // it: 40 s and 44 s from NotReady to Ready (written as the admin, as those components would).
    let workers: Vec<String> = c.get_json("/api/v1/nodes")["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap().to_string())
        .filter(|n| !n.contains("cp"))
        .collect();
    assert_eq!(workers.len(), 2, "{workers:?}");
    let now = jiff::Timestamp::now().as_second() - 600;
    for (i, (node, took)) in workers.iter().zip([40, 44]).enumerate() {
        for (j, (reason, at)) in
            [("NodeNotReady", now), ("Starting", now + 30), ("NodeReady", now + took)].iter().enumerate()
        {
            let stamp = jiff::Timestamp::from_second(*at).unwrap().to_string();
            let event = json!({
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"name": format!("{node}.restart-{i}-{j}"), "namespace": "default"},
                "involvedObject": {"kind": "Node", "name": node, "uid": node},
                "reason": reason, "message": format!("Node {node} status is now: {reason}"),
                "source": {"component": "kubelet", "host": node},
                "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1, "type": "Normal"
            });
            let (status, body) =
                c.http("POST", "/api/v1/namespaces/default/events", "application/json", &event.to_string());
            assert_eq!(status, 201, "{body}");
        }
    }

    // With the plan role only: the events go unread, the default is used and the forecast says
    // why and what to grant.
    let f = rehearse(&c);
    assert_eq!(f["twin"]["nodeRestartSeconds"], 90.0, "{f:#}");
    let source = f["twin"]["nodeRestartSource"].as_str().unwrap();
    assert!(source.contains("refused") && source.contains("rbac --for rehearse"), "{source}");

    // With the rehearse role too: the median of the two restarts.
    let yaml = bind(&c, &["--for", "rehearse", "--user", "planner"]);
    assert!(yaml.contains(r#"resources: ["events"]"#), "{yaml}");
    let f = rehearse(&c);
    assert_eq!(f["twin"]["nodeRestartSeconds"], 44.0, "{f:#}");
    let source = f["twin"]["nodeRestartSource"].as_str().unwrap();
    assert!(source.contains("median of 2 node restarts"), "{source}");
    // Nothing else was asked for, and the rehearsal wrote nothing.
    let writes: Vec<String> =
        mutations(&c).into_iter().filter(|m| !m.contains("events") && !m.contains("clusterrole")).collect();
    assert!(writes.is_empty(), "{writes:?}");
}
