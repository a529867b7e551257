//! The krew plugin manifest (`.krew.yaml`, a krew-release-bot template) rendered for a locally
//! built archive, checked with krew's own `validate-krew-manifest`, and installed with the real
//! `krew`; then `kubectl upgrade` runs the installed plugin. krew comes from `e2e/krew.sh build`
//! (`.ci/run` builds it); without it the test is skipped, unless `K8S_UPGRADE_REQUIRE_KREW=1`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{stderr, stdout};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// krew's directory from `e2e/krew.sh status`, or why there is none.
fn krew_dir(test: &str) -> Option<PathBuf> {
    let o = Command::new(repo().join("e2e/krew.sh")).arg("status").output();
    let found = o.as_ref().ok().filter(|o| o.status.success()).map(|o| PathBuf::from(stdout(o).trim()));
    match found.and_then(|p| p.parent().map(Path::to_path_buf)) {
        Some(dir) if dir.join("validate-krew-manifest").is_file() => Some(dir),
        _ => {
            if std::env::var("K8S_UPGRADE_REQUIRE_KREW").as_deref() == Ok("1") {
                panic!(
                    "{test}: krew is required (K8S_UPGRADE_REQUIRE_KREW=1) but it is not built: run e2e/krew.sh build"
                );
            }
            eprintln!(
                "skipping {test}: krew is not built (run e2e/krew.sh build; K8S_UPGRADE_REQUIRE_KREW=1 fails instead)"
            );
            None
        }
    }
}

/// What krew-release-bot does with the template: `{{ .TagName }}` becomes the tag and each
/// `{{ addURIAndSha "URL" .TagName }}` the URL's `uri:` and `sha256:` lines.
fn render(template: &str, tag: &str, sha256: &str) -> String {
    let mut out = String::new();
    for line in template.lines() {
        let indent: String = line.chars().take_while(|c| *c == ' ').collect();
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix("{{ addURIAndSha \"") {
            let url = rest.split_once("\" .TagName }}").expect("addURIAndSha call").0.replace("{{ .TagName }}", tag);
            out.push_str(&format!("{indent}uri: {url}\n{indent}sha256: {sha256}\n"));
        } else {
            out.push_str(&line.replace("{{ .TagName }}", tag));
            out.push('\n');
        }
    }
    out
}

#[test]
fn krew_manifest_validates_and_installs_the_plugin_that_kubectl_runs() {
    let test = "krew_manifest_validates_and_installs_the_plugin_that_kubectl_runs";
    let Some(krew) = krew_dir(test) else { return };
    if !crate::sim::kubectl_available(test) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("k8s-upgrade-it-krew-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let stage = dir.join("stage");
    std::fs::create_dir_all(&stage).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_k8s-upgrade"), stage.join("kubectl-upgrade")).unwrap();
    std::fs::copy(repo().join("LICENSE"), stage.join("LICENSE")).unwrap();
    let archive = dir.join("kubectl-upgrade-linux-amd64.tar.gz");
    let o = Command::new("tar")
        .arg("-czf")
        .arg(&archive)
        .arg("-C")
        .arg(&stage)
        .args(["kubectl-upgrade", "LICENSE"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let o = Command::new("sha256sum").arg(&archive).output().unwrap();
    let sha = stdout(&o).split_whitespace().next().unwrap().to_string();
    assert_eq!(sha.len(), 64, "{sha}");

    let template = std::fs::read_to_string(repo().join(".krew.yaml")).unwrap();
    let tag = format!("v{}", env!("CARGO_PKG_VERSION"));
    let manifest = dir.join("upgrade.yaml");
    std::fs::write(&manifest, render(&template, &tag, &sha)).unwrap();

    // krew-index's own checks: schema, name = file name, semver tag, platforms, selectors.
    // `-skip-install` because its install step downloads each platform's URL; the install
    // below is the same one, from the local archive.
    let o = Command::new(krew.join("validate-krew-manifest"))
        .arg("-manifest")
        .arg(&manifest)
        .arg("-skip-install")
        .output()
        .unwrap();
    assert!(o.status.success(), "validate-krew-manifest refused it:\n{}{}", stdout(&o), stderr(&o));

    // Installed offline from the archive, as `kubectl krew install` would after a download;
    // KREW_NO_UPGRADE_CHECK keeps krew from asking GitHub for a newer krew.
    let root = dir.join("krew-root");
    let env = |c: &mut Command| {
        c.env("KREW_ROOT", &root)
            .env("KREW_NO_UPGRADE_CHECK", "1")
            .env("HOME", &dir)
            .env("KREW_OS", "linux")
            .env("KREW_ARCH", "amd64");
    };
    let mut install = Command::new(krew.join("krew"));
    install
        .arg("install")
        .arg(format!("--manifest={}", manifest.display()))
        .arg(format!("--archive={}", archive.display()));
    env(&mut install);
    let o = install.output().unwrap();
    assert!(o.status.success(), "krew install failed:\n{}{}", stdout(&o), stderr(&o));
    assert!(root.join("bin/kubectl-upgrade").exists(), "no kubectl-upgrade link in {}", root.display());
    assert!(root.join("receipts/upgrade.yaml").exists());

    let path = format!("{}:{}", root.join("bin").display(), std::env::var("PATH").unwrap_or_default());
    let o =
        Command::new("kubectl").args(["upgrade", "--version"]).env("PATH", &path).env("HOME", &dir).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(env!("CARGO_PKG_VERSION")), "{}", stdout(&o));
    let o = Command::new("kubectl")
        .args(["upgrade", "paths", "--distro", "kubeadm", "--from", "1.30", "--to", "1.32"])
        .env("PATH", &path)
        .env("HOME", &dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("1.31"), "{}", stdout(&o));

    // The template renders every platform the same way; a broken one would not validate.
    assert_eq!(template.matches("addURIAndSha").count(), 4);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rendering_follows_the_release_bot() {
    let t =
        "  version: {{ .TagName }}\n      {{ addURIAndSha \"https://x/download/{{ .TagName }}/a.tar.gz\" .TagName }}\n";
    assert_eq!(
        render(t, "v1.2.3", "ab"),
        "  version: v1.2.3\n      uri: https://x/download/v1.2.3/a.tar.gz\n      sha256: ab\n"
    );
}
