//! Kubernetes vocabulary shared by the checks, the executor and the simulator, so that each
//! rule exists once: what makes a node Ready or a control-plane node, how an image names its
//! version, which annotations and labels mean what, and how a drain treats each pod. Pure:
//! functions over plain values, with adapters for the `k8s-openapi` types; no I/O.

pub mod annotations;
pub mod budget;
pub mod image;
pub mod node;
pub mod pod;
pub mod skew;
pub mod validation;
