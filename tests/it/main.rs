//! Integration tests: one binary (faster to link), one module per area.

mod access;
mod apply;
mod catalog;
mod common;
mod conventions;
mod fleet;
mod helm;
mod job;
mod managed;
mod manifests;
mod node_jobs;
mod paths;
mod plan;
mod sim;
