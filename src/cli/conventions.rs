//! What every well-kept CLI ships beside its commands: shell completion scripts
//! (`completions bash|zsh|fish|powershell|elvish`) and man pages (`man --out-dir DIR`: one page
//! for the tool and one per subcommand, `k8s-upgrade-plan.1` and so on), both generated from the
//! same clap definitions that parse the command line, so they cannot drift from it. Also the
//! name the tool answers to: installed as `kubectl-upgrade` it is the kubectl plugin
//! `kubectl upgrade`, and its help and completions say so.

use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory};

use super::{Cli, CliError, Exit};

/// The binary name kubectl looks for to run `kubectl upgrade`.
pub const PLUGIN_BINARY: &str = "kubectl-upgrade";

/// How the tool is invoked, from `argv[0]`: `kubectl upgrade` when installed as the plugin.
pub fn invoked_as(argv0: &str) -> &'static str {
    let base = Path::new(argv0).file_name().and_then(|n| n.to_str()).unwrap_or_default();
    if base == PLUGIN_BINARY || base.starts_with(&format!("{PLUGIN_BINARY}.")) {
        "kubectl upgrade"
    } else {
        "k8s-upgrade"
    }
}

/// The clap command under the name it is invoked as.
pub fn command(argv0: &str) -> clap::Command {
    Cli::command().bin_name(invoked_as(argv0))
}

#[derive(Debug, Clone, Args)]
#[command(
    after_help = "Examples:\n  source <(k8s-upgrade completions bash)\n  k8s-upgrade completions zsh > \"${fpath[1]}/_k8s-upgrade\"\n  k8s-upgrade completions fish > ~/.config/fish/completions/k8s-upgrade.fish"
)]
pub struct CompletionsArgs {
    /// The shell to print the completion script for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Clone, Args)]
#[command(
    after_help = "Examples:\n  k8s-upgrade man --out-dir /usr/local/share/man/man1\n  man -l ./man/k8s-upgrade-plan.1"
)]
pub struct ManArgs {
    /// Directory the pages are written to (created if missing).
    #[arg(long, value_name = "DIR", default_value = "man")]
    pub out_dir: PathBuf,
}

pub fn completions(args: CompletionsArgs, argv0: &str) -> Result<Exit, CliError> {
    let mut cmd = command(argv0);
    let name = invoked_as(argv0).replace(' ', "-");
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, name.clone(), &mut out);
    let mut script = String::from_utf8_lossy(&out).into_owned();
    if args.shell == clap_complete::Shell::Bash {
        // clap_complete's bash script names a subcommand's state `k8s__upgrade__subcmd__apply`
        // where it records it and `k8s__subcmd__upgrade__subcmd__apply` where it matches it,
        // when the binary's name has a hyphen: without this, no subcommand flag completes.
        script = script.replace(&name.replace('-', "__subcmd__"), &name.replace('-', "__"));
    }
    super::print_stdout(&script)?;
    Ok(Exit::Success)
}

/// The pages: `(file name, roff text)` for the tool and each subcommand.
pub fn pages() -> Result<Vec<(String, Vec<u8>)>, CliError> {
    let root = Cli::command();
    let mut pages = Vec::new();
    let render = |cmd: clap::Command| -> Result<Vec<u8>, CliError> {
        let mut out = Vec::new();
        clap_mangen::Man::new(cmd)
            .render(&mut out)
            .map_err(|e| CliError::error(format!("cannot render a man page: {e}")))?;
        Ok(out)
    };
    pages.push(("k8s-upgrade.1".to_string(), render(root.clone())?));
    for sub in root.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = format!("k8s-upgrade-{}", sub.get_name());
        pages.push((format!("{name}.1"), render(sub.clone().display_name(name.clone()).bin_name(name))?));
    }
    Ok(pages)
}

pub fn man(args: ManArgs) -> Result<Exit, CliError> {
    let dir = &args.out_dir;
    std::fs::create_dir_all(dir)
        .map_err(|e| CliError::error(format!("cannot create --out-dir {}: {e}", dir.display())))?;
    let mut written = String::new();
    for (file, text) in pages()? {
        let path = dir.join(&file);
        std::fs::write(&path, text).map_err(|e| CliError::error(format!("cannot write {}: {e}", path.display())))?;
        written.push_str(&format!("{}\n", path.display()));
    }
    super::print_stdout(&written)?;
    Ok(Exit::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installed_as_kubectl_upgrade_it_is_the_plugin() {
        assert_eq!(invoked_as("/usr/local/bin/kubectl-upgrade"), "kubectl upgrade");
        assert_eq!(invoked_as("kubectl-upgrade.exe"), "kubectl upgrade");
        assert_eq!(invoked_as("./target/debug/k8s-upgrade"), "k8s-upgrade");
        assert_eq!(invoked_as(""), "k8s-upgrade");
    }

    #[test]
    fn one_page_per_subcommand_each_naming_itself() {
        let pages = pages().unwrap();
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        for expected in ["k8s-upgrade.1", "k8s-upgrade-plan.1", "k8s-upgrade-apply.1", "k8s-upgrade-completions.1"] {
            assert!(names.contains(&expected), "{names:?}");
        }
        let plan = String::from_utf8(pages.iter().find(|(n, _)| n == "k8s-upgrade-plan.1").unwrap().1.clone()).unwrap();
        assert!(plan.starts_with(".ie") || plan.contains(".TH"), "roff: {}", &plan[..plan.len().min(200)]);
        assert!(plan.contains("k8s\\-upgrade\\-plan") && plan.contains("\\-\\-manifests"), "{plan}");
    }
}
