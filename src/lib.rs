//! k8s-upgrade: plan and perform Kubernetes cluster upgrades.
//!
//! The library holds everything but argument parsing and process exit. Pure modules: the version
//! model (`version`), Kubernetes vocabulary (`k8s`), the upgrade-paths catalog (`catalog`), the hop
//! graph (`graph`), the inventory types (`inventory`), the checks (`checks`), the planner
//! (`plan`) and Helm's release storage and its rewrite (`helm`, but for `helm::cluster`). Modules
//! with I/O: the kube client helpers (`kubeapi`), the collectors (`inventory::live`,
//! `inventory::manifests`), Helm release reads and writes (`helm::cluster`), the executor
//! (`exec`), the simulator (`sim`) and the command handlers, renderers and reporters (`cli`).
//! `main.rs` only parses, runs and exits.

pub mod catalog;
pub mod checks;
pub mod cli;
pub mod clock;
pub mod exec;
#[doc(hidden)]
pub mod fuzzing;
pub mod graph;
pub mod helm;
pub mod inventory;
pub mod k8s;
pub mod kubeapi;
pub mod labels;
pub mod limits;
pub mod plan;
pub mod quantity;
pub mod sim;
pub mod version;
