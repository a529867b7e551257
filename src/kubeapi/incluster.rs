//! Running inside a pod: recognising it, and connecting as the pod's ServiceAccount the way
//! client-go's in-cluster config does (`https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`,
//! the mounted `ca.crt`, and the mounted `token` read from its file, which the kubelet rotates:
//! kube-rs reads a token file again before it is a minute old). The directory holding `token`,
//! `ca.crt` and `namespace` is `/var/run/secrets/kubernetes.io/serviceaccount`, or
//! `K8S_UPGRADE_SERVICEACCOUNT_DIR` (so the binary can be run as a pod would, outside one).

use std::path::{Path, PathBuf};

use kube::config::Kubeconfig;

pub const SERVICEACCOUNT_DIR_ENV: &str = "K8S_UPGRADE_SERVICEACCOUNT_DIR";
pub const DEFAULT_SERVICEACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The namespace file is a name; anything longer is not one.
const MAX_NAMESPACE_BYTES: u64 = 253;

/// The in-cluster environment as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InCluster {
    /// `https://HOST:PORT` from the service environment variables.
    pub server: String,
    /// The directory holding the ServiceAccount's token, CA and namespace.
    pub dir: PathBuf,
}

/// The in-cluster environment, when this process runs in a pod: both service variables set
/// and a ServiceAccount token mounted. Callers use it only when no kubeconfig was named.
pub fn detect() -> Option<InCluster> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let dir = std::env::var_os(SERVICEACCOUNT_DIR_ENV)
        .filter(|d| !d.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_SERVICEACCOUNT_DIR), PathBuf::from);
    from_parts(var("KUBERNETES_SERVICE_HOST")?.trim(), var("KUBERNETES_SERVICE_PORT")?.trim(), &dir)
}

fn from_parts(host: &str, port: &str, dir: &Path) -> Option<InCluster> {
    if !dir.join("token").is_file() {
        return None;
    }
    let port: u16 = port.parse().ok()?;
    // As client-go joins them: an IPv6 address in brackets, the port always written.
    let host = match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(ip)) => format!("[{ip}]"),
        _ => host.to_string(),
    };
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    Some(InCluster { server: format!("https://{host}:{port}"), dir })
}

impl InCluster {
    /// A kubeconfig in memory that says what the in-cluster config says: the server, the
    /// mounted CA file, the mounted token file (re-read as it rotates) and the pod's namespace.
    pub fn kubeconfig(&self) -> Result<Kubeconfig, String> {
        let ca = self.dir.join("ca.crt");
        if !ca.is_file() {
            return Err(format!("{} is missing: the ServiceAccount's CA is mounted next to its token", ca.display()));
        }
        let namespace = read_namespace(&self.dir.join("namespace")).unwrap_or_else(|| "default".into());
        let doc = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "in-cluster", "cluster": {"server": self.server, "certificate-authority": ca}}],
            "users": [{"name": "service-account", "user": {"tokenFile": self.dir.join("token")}}],
            "contexts": [{"name": "in-cluster", "context": {"cluster": "in-cluster", "user": "service-account", "namespace": namespace}}],
            "current-context": "in-cluster",
        });
        serde_json::from_value(doc).map_err(|e| format!("cannot build the in-cluster configuration: {e}"))
    }

    pub fn describe(&self) -> String {
        format!("the pod's ServiceAccount ({}, {SERVICEACCOUNT_DIR_ENV} to change)", self.dir.display())
    }
}

fn read_namespace(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path).ok()?.take(MAX_NAMESPACE_BYTES + 1).read_to_string(&mut text).ok()?;
    let ns = text.trim();
    let valid = !ns.is_empty()
        && ns.len() <= 63
        && ns.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    valid.then(|| ns.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pod_environment_is_recognised_only_with_a_token_and_a_port() {
        let dir = std::env::temp_dir().join(format!("k8s-upgrade-sa-{}-{}", std::process::id(), fastrand::u64(..)));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(from_parts("10.96.0.1", "443", &dir), None, "no token mounted");
        std::fs::write(dir.join("token"), "t").unwrap();
        assert_eq!(from_parts("10.96.0.1", "https", &dir), None, "a port that is not one");
        let ic = from_parts("10.96.0.1", "443", &dir).unwrap();
        assert_eq!(ic.server, "https://10.96.0.1:443");
        assert_eq!(from_parts("fd00::1", "6443", &dir).unwrap().server, "https://[fd00::1]:6443");
        assert!(ic.kubeconfig().unwrap_err().contains("ca.crt"));
        std::fs::write(dir.join("ca.crt"), "-----BEGIN CERTIFICATE-----\n").unwrap();
        std::fs::write(dir.join("namespace"), "ops\n").unwrap();
        let kc = ic.kubeconfig().unwrap();
        let user = kc.auth_infos[0].auth_info.as_ref().unwrap();
        assert_eq!(user.token_file.as_deref(), Some(dir.join("token").to_str().unwrap()));
        assert_eq!(kc.contexts[0].context.as_ref().unwrap().namespace.as_deref(), Some("ops"));
        std::fs::write(dir.join("namespace"), "Not a namespace; rm -rf /").unwrap();
        assert_eq!(read_namespace(&dir.join("namespace")), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
