//! The conventions a CLI lives by: completions that load in bash, man pages `man` renders, and
//! the binary installed as `kubectl-upgrade` working as the kubectl plugin `kubectl upgrade`.

use std::process::{Command, Stdio};

use crate::common::{stderr, stdout};

fn scratch(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("k8s-upgrade-it-conventions-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn bash_completion_loads_and_completes_subcommands_and_flags() {
    let dir = scratch("bash");
    let o = crate::common::run(&["completions", "bash"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let script = dir.join("k8s-upgrade.bash");
    std::fs::write(&script, &o.stdout).unwrap();
    let Ok(o) = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {} && complete -p k8s-upgrade && f=$(complete -p k8s-upgrade | sed 's/.*-F \\([^ ]*\\).*/\\1/'); COMP_WORDS=(k8s-upgrade pl); COMP_CWORD=1; \"$f\" k8s-upgrade pl k8s-upgrade; echo \"${{COMPREPLY[@]}}\"; COMP_WORDS=(k8s-upgrade apply --node-job); COMP_CWORD=2; \"$f\" k8s-upgrade --node-job apply; echo \"${{COMPREPLY[@]}}\"",
            script.display()
        ))
        .stdin(Stdio::null())
        .output()
    else {
        println!("skipped: bash is not installed");
        return;
    };
    let out = stdout(&o);
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    assert!(out.lines().next().is_some_and(|l| l.starts_with("complete ") && l.ends_with(" k8s-upgrade")), "{out}");
    assert!(out.lines().nth(1).is_some_and(|l| l.split_whitespace().any(|w| w == "plan")), "{out}");
    assert!(out.contains("--node-job-image") && out.contains("--node-job-namespace"), "{out}");
    for shell in ["zsh", "fish", "powershell", "elvish"] {
        let o = crate::common::run(&["completions", shell]);
        assert_eq!(o.status.code(), Some(0), "{shell}: {}", stderr(&o));
        assert!(stdout(&o).contains("helm-fix"), "{shell}");
    }
    let o = crate::common::run(&["completions", "tcsh"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn man_renders_a_page_for_the_tool_and_each_subcommand() {
    let dir = scratch("man");
    let o = crate::common::run(&["man", "--out-dir", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let pages: Vec<String> = stdout(&o).lines().map(str::to_string).collect();
    for sub in [
        "",
        "-paths",
        "-plan",
        "-apply",
        "-inventory",
        "-rbac",
        "-helm-fix",
        "-simulate",
        "-job",
        "-fleet",
        "-completions",
        "-man",
    ] {
        let page = dir.join(format!("k8s-upgrade{sub}.1"));
        assert!(pages.contains(&page.display().to_string()), "{pages:?}");
        let Ok(o) = Command::new("man").env("MANWIDTH", "100").env("MANPAGER", "cat").arg("-l").arg(&page).output()
        else {
            println!("skipped rendering: man is not installed");
            return;
        };
        let text = stdout(&o);
        assert!(o.status.success(), "man -l {}: {}", page.display(), stderr(&o));
        assert!(
            text.contains("NAME") && text.contains("SYNOPSIS") && text.contains(&format!("k8s-upgrade{sub}")),
            "{text}"
        );
    }
    let apply = std::fs::read_to_string(dir.join("k8s-upgrade-apply.1")).unwrap();
    assert!(apply.contains("node\\-job\\-namespace"), "every flag is on the page");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn installed_as_kubectl_upgrade_kubectl_runs_it_as_a_plugin() {
    if !crate::sim::kubectl_available("installed_as_kubectl_upgrade_kubectl_runs_it_as_a_plugin") {
        return;
    }
    let dir = scratch("plugin");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_k8s-upgrade"), bin.join("kubectl-upgrade")).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let kubectl = |args: &[&str]| {
        let mut k = Command::new("kubectl");
        for (key, _) in std::env::vars() {
            if key.starts_with("K8S_UPGRADE_") || key == "KUBECONFIG" {
                k.env_remove(key);
            }
        }
        k.env("K8S_UPGRADE_TODAY", crate::common::TODAY)
            .env("NO_COLOR", "1")
            .env("PATH", &path)
            .env("HOME", dir.join("home"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let o = kubectl(&["plugin", "list"]);
    assert!(stdout(&o).contains("kubectl-upgrade"), "{}\n{}", stdout(&o), stderr(&o));
    let o = kubectl(&["upgrade", "plan", "--simulate", "--to", "1.27"]);
    assert!(matches!(o.status.code(), Some(0) | Some(3)), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("kubeadm: 1.24.17 → 1.27"), "{}", stdout(&o));
    let o = kubectl(&["upgrade", "--help"]);
    assert!(stdout(&o).contains("Usage: kubectl upgrade [OPTIONS] <COMMAND>"), "{}", stdout(&o));
    let o = kubectl(&["upgrade", "completions", "bash"]);
    assert!(stdout(&o).contains("kubectl-upgrade"), "completions name the plugin binary");
    let _ = std::fs::remove_dir_all(&dir);
}
