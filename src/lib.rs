//! k8s-upgrade: plan and perform Kubernetes cluster upgrades.
//!
//! The library holds everything but argument parsing and process exit: the version model, the
//! upgrade-paths catalog, the hop graph, and the command handlers in `cli`. `main.rs` only parses,
//! runs and exits.

pub mod catalog;
pub mod checks;
pub mod cli;
pub mod exec;
pub mod graph;
pub mod inventory;
pub mod kubeapi;
pub mod labels;
pub mod plan;
pub mod quantity;
pub mod sim;
pub mod version;
