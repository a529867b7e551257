//! Everything that talks to a Kubernetes API server from the client side: kubeconfig loading,
//! credentials (including exec plugins), TLS, the one-line wording of what went wrong, and keeping
//! credentials out of every string we print or store.

pub mod client;
pub mod errors;
pub mod exec;
pub mod incluster;
pub mod permissions;
pub mod redact;
pub mod retry;

pub use client::{ConnectError, ConnectOptions, Connection, KubeconfigSource, connect};
