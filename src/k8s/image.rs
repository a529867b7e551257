//! Container image references.

/// `registry/path/name:tag@digest` → (`registry/path/name`, tag); the tag is empty when there is
/// none. A port in the registry (`host:5000/name`) is not a tag.
pub fn split_image(image: &str) -> (String, String) {
    let image = image.split('@').next().unwrap_or(image);
    let (repo, tag) = match image.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, t),
        _ => (image, ""),
    };
    (repo.to_string(), tag.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_ports_and_digests() {
        assert_eq!(
            split_image("registry.k8s.io/kube-apiserver:v1.31.2"),
            ("registry.k8s.io/kube-apiserver".into(), "v1.31.2".into())
        );
        assert_eq!(split_image("host:5000/coredns"), ("host:5000/coredns".into(), String::new()));
        assert_eq!(split_image("host:5000/coredns:1.11.3@sha256:ab12"), ("host:5000/coredns".into(), "1.11.3".into()));
        assert_eq!(split_image("nginx@sha256:ab12"), ("nginx".into(), String::new()));
    }
}
