//! Integration tests: one binary (faster to link), one module per area.

mod access;
mod apply;
mod catalog;
mod common;
mod managed;
mod manifests;
mod paths;
mod plan;
mod sim;
