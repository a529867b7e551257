//! Tests against a real control plane: kube-apiserver, kube-controller-manager and kube-scheduler
//! built from the official Go modules (`e2e/control-plane.sh`), with kwok playing the kubelets.
//! Skipped with the reason printed when the binaries are not built; a failure under
//! `K8S_UPGRADE_REQUIRE_REAL=1` (CI builds them first).

mod apply;
mod cluster;
mod differential;
mod helm;
mod node_jobs;
mod plan;
mod rbac;
mod rehearse;
mod watcher;
