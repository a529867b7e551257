//! Replays every saved fuzz input through the harness its fuzz target runs
//! (`k8s_upgrade::fuzzing`), on stable and under plain `cargo test`: the corpora in
//! `fuzz/corpus/<target>/` (inputs that reach distinct code) and the inputs that once failed, in
//! `fuzz/regressions/<target>/`. A harness panics when an invariant breaks, so each input is
//! run on its own and every failure is named.

use std::path::{Path, PathBuf};

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries.map(|e| e.expect("a corpus entry").path()).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

/// Runs every input of `target`, returning how many there were; panics naming each that fails.
fn replay(target: &str) -> usize {
    let (_, harness) = k8s_upgrade::fuzzing::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .unwrap_or_else(|| panic!("no harness {target}"));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut failed = Vec::new();
    let mut count = 0;
    for dir in ["corpus", "regressions"] {
        for file in inputs(&root.join(dir).join(target)) {
            let data = std::fs::read(&file).expect("a corpus file");
            count += 1;
            if std::panic::catch_unwind(|| harness(&data)).is_err() {
                failed.push(file.display().to_string());
            }
        }
    }
    assert!(failed.is_empty(), "{target}: {} of {count} inputs fail:\n{}", failed.len(), failed.join("\n"));
    count
}

macro_rules! replay_tests {
    ($($target:ident),*) => {$(
        #[test]
        fn $target() {
            assert!(replay(stringify!($target)) > 0, "fuzz/corpus/{} is empty", stringify!($target));
        }
    )*};
}

replay_tests!(version, manifests, helm_release, selectors, scenario, plan_document, journal);

#[test]
fn every_target_has_a_replay() {
    let names: Vec<&str> = k8s_upgrade::fuzzing::TARGETS.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["version", "manifests", "helm_release", "selectors", "scenario", "plan_document", "journal"]);
    for name in names {
        let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/fuzz_targets").join(format!("{name}.rs"));
        let text = std::fs::read_to_string(&target).unwrap_or_else(|e| panic!("{}: {e}", target.display()));
        assert!(text.contains(&format!("k8s_upgrade::fuzzing::{name}(data)")), "{}", target.display());
    }
}
