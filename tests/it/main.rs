//! Integration tests: one binary (faster to link), one module per area.

mod access;
mod apply;
mod bad_input;
mod catalog;
mod common;
mod conventions;
mod fleet;
mod helm;
mod job;
mod journal;
mod krew;
mod logging;
mod managed;
mod manifests;
mod node_jobs;
mod paths;
mod plan;
mod rehearse;
mod report_html;
mod sim;
