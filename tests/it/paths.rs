//! `k8s-upgrade paths` end to end: outputs, refusals and exit codes.

use crate::common::{run, stderr, stdout};

#[test]
fn kubeadm_1_27_to_1_30_json_document() {
    let o = run(&["paths", "--distro", "kubeadm", "--from", "1.27.3", "--to", "1.30", "-o", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON document");
    assert_eq!(doc["apiVersion"], "k8s-upgrade.dev/v1alpha1");
    assert_eq!(doc["kind"], "UpgradePath");
    let cp: Vec<&str> = doc["hops"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["component"] == "control-plane")
        .map(|h| h["to"].as_str().unwrap())
        .collect();
    assert_eq!(cp.len(), 3);
    assert!(cp[0].starts_with("1.28.") && cp[1].starts_with("1.29.") && cp[2].starts_with("1.30."), "{cp:?}");
    insta::assert_snapshot!("kubeadm_1_27_to_1_30_json", stdout(&o));
}

#[test]
fn every_managed_distro_walks_one_minor_at_a_time() {
    for distro in ["eks", "gke", "aks"] {
        let o = run(&["paths", "--distro", distro, "--from", "1.27.3", "--to", "1.30", "-o", "json"]);
        assert!(o.status.success(), "{distro}: {}", stderr(&o));
        let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let cp: Vec<String> = doc["hops"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["component"] == "control-plane")
            .map(|h| h["to"].as_str().unwrap().to_string())
            .collect();
        let minors: Vec<&str> = cp.iter().map(|v| &v[..4]).collect();
        assert_eq!(minors, ["1.28", "1.29", "1.30"], "{distro}");
    }
}

#[test]
fn table_output_reads_top_to_bottom() {
    let o = run(&["paths", "--distro", "generic", "--from", "1.27.3", "--to", "1.31", "--kubelet", "1.27.3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    insta::assert_snapshot!("generic_1_27_to_1_31_table", stdout(&o));
}

#[test]
fn dot_and_mermaid_pictures() {
    let o = run(&["paths", "--distro", "kubeadm", "--from", "1.22.4", "--to", "1.25", "-o", "dot"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let dot = stdout(&o);
    assert!(dot.starts_with("digraph upgrade_path {") && dot.trim_end().ends_with('}'));
    insta::assert_snapshot!("kubeadm_1_22_to_1_25_dot", dot);
    let o = run(&["paths", "--distro", "kubeadm", "--from", "1.22.4", "--to", "1.25", "-o", "mermaid"]);
    assert!(o.status.success(), "{}", stderr(&o));
    insta::assert_snapshot!("kubeadm_1_22_to_1_25_mermaid", stdout(&o));
}

#[test]
fn yaml_output_is_the_same_document() {
    let o = run(&["paths", "--distro", "eks", "--from", "v1.29.3-eks-4a1b2c3", "--to", "1.31", "-o", "yaml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("apiVersion: k8s-upgrade.dev/v1alpha1") && text.contains("kind: UpgradePath"), "{text}");
}

#[test]
fn list_shows_support_dates() {
    let o = run(&["paths", "--distro", "eks", "--list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("STANDARD UNTIL") && text.contains("1.31"), "{text}");
    let o = run(&["paths", "--distro", "kubeadm", "--list", "-o", "json"]);
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["kind"], "DistroVersions");
}

fn assert_one_line_error(args: &[&str], code: i32, needle: &str) {
    let o = run(args);
    assert_eq!(o.status.code(), Some(code), "{args:?}: {}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("error: ") && err.contains(needle), "{err}");
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{err}");
    assert!(o.stdout.is_empty(), "nothing on stdout on error");
}

#[test]
fn refusals_are_one_line_and_name_the_value() {
    assert_one_line_error(&["paths", "--distro", "kubeadm", "--from", "1.30.2", "--to", "1.28"], 1, "1.28");
    assert_one_line_error(&["paths", "--distro", "kubeadm", "--from", "1.x", "--to", "1.30"], 2, "'1.x'");
    assert_one_line_error(&["paths", "--distro", "kubeadm", "--from", "1.29", "--to", "v2"], 2, "'v2'");
    assert_one_line_error(&["paths", "--distro", "openshift", "--from", "1.29", "--to", "1.30"], 1, "'openshift'");
    assert_one_line_error(&["paths", "--distro", "kubeadm", "--from", "1.29", "--to", "1.99"], 1, "1.99");
    assert_one_line_error(&["paths", "--distro", "kubeadm", "--from", "1.12", "--to", "1.30"], 1, "1.12");
    let long = "1".repeat(1000);
    assert_one_line_error(&["paths", "--distro", "kubeadm", "--from", &long, "--to", "1.30"], 2, "too long");
    assert_one_line_error(
        &["paths", "--distro", "kubeadm", "--from", "1.29", "--to", "1.30", "--paths", "/nonexistent/dir"],
        1,
        "/nonexistent/dir",
    );
}

#[test]
fn paths_dir_overrides_the_embedded_catalog() {
    let dir = tempdir();
    copy_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("upgrade-paths").as_path(), &dir);
    let o = run(&["paths", "--distro", "kubeadm", "--from", "1.29", "--to", "1.30", "--paths", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Break one field: the error names file, entry and field.
    let skew = dir.join("skew.yaml");
    let text = std::fs::read_to_string(&skew).unwrap().replacen("maxOlder: 3", "maxOlder: three", 1);
    std::fs::write(&skew, text).unwrap();
    assert_one_line_error(
        &["paths", "--distro", "kubeadm", "--from", "1.29", "--to", "1.30", "--paths", dir.to_str().unwrap()],
        1,
        "skew.yaml",
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("k8s-upgrade-test-{}-{}", std::process::id(), line!()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn simulate_command_serves_loopback_and_refuses_other_addresses() {
    use std::io::{BufRead, BufReader, Read, Write};
    let dir = tempdir();
    let kubeconfig = dir.join("kc");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_k8s-upgrade"))
        .args([
            "simulate",
            "--scenario",
            "blocked",
            "--time-scale",
            "0.1",
            "--kubeconfig-out",
            kubeconfig.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.contains("listening on https://127.0.0.1:") && line.contains("Kubernetes v1.30.14"), "{line}");
    let addr = line.split("https://").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    let config = std::fs::read_to_string(&kubeconfig).unwrap();
    assert!(config.contains(&format!("server: https://{addr}")), "{config}");
    assert!(config.contains("certificate-authority-data: ") && config.contains("client-key-data: "), "{config}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&kubeconfig).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the kubeconfig holds a private key: owner only");
    }
    // Plain HTTP is refused: the simulator speaks TLS, as every apiserver does.
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    write!(s, "GET /version HTTP/1.0\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    assert!(!String::from_utf8_lossy(&raw).contains("gitVersion"), "answered plain HTTP");
    let _ = child.kill();
    let _ = child.wait();
    std::fs::remove_dir_all(&dir).unwrap();

    let o = run(&["simulate", "--listen", "0.0.0.0:0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("loopback"), "{}", stderr(&o));
    let o = run(&["simulate", "--scenario", "no-such-scenario"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("no-such-scenario") && stderr(&o).contains("demo, blocked, pools, large"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bad_scenario_files_name_file_line_and_field() {
    let dir = tempdir();
    let file = dir.join("bad.yaml");
    std::fs::write(&file, "name: bad\ncluster:\n  version: \"1.30.1\"\n  distro: kubeadm\nnodePools:\n  - name: w\n    count: 2\n    flavour: large\n").unwrap();
    let o = run(&["simulate", "--scenario", file.to_str().unwrap()]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("bad.yaml") && err.contains("flavour") && err.contains("line 8"), "{err}");
    std::fs::write(&file, "name: bad\ncluster:\n  version: \"1.x\"\n  distro: kubeadm\nnodePools: []\n").unwrap();
    let err = stderr(&run(&["simulate", "--scenario", file.to_str().unwrap()]));
    assert!(err.contains("bad.yaml") && err.contains("cluster.version") && err.contains("'1.x'"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
