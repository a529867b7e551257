//! The inventory: one pure value holding everything the planner knows about a cluster and its
//! manifests, with where each fact came from.
//!
//! Collectors fill it (`manifests` reads files; live and Helm collectors follow the same shape);
//! the planner only reads it. Every object carries its evidence, so a finding can say how we
//! know: a manifest file and document, a Helm release, a last-applied annotation, objects served
//! at a deprecated version, or the apiserver's request metric.

pub mod manifests;

use serde::{Deserialize, Serialize};

/// How we know an object uses an API version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "kebab-case")]
pub enum Evidence {
    /// A document in a manifest file (`document` counts from 1).
    #[serde(rename_all = "camelCase")]
    Manifest { file: String, document: usize },
    /// The stored manifest of a Helm release.
    #[serde(rename_all = "camelCase")]
    HelmRelease { release: String, namespace: String, revision: u32 },
    /// The `kubectl.kubernetes.io/last-applied-configuration` annotation of a live object.
    #[serde(rename_all = "camelCase")]
    LastApplied { object: String },
    /// The object is served at a deprecated group-version.
    #[serde(rename_all = "camelCase")]
    ServedObjects { object: String },
    /// `apiserver_requested_deprecated_apis` reported a request.
    #[serde(rename_all = "camelCase")]
    RequestMetric { resource: String },
}

impl Evidence {
    pub fn describe(&self) -> String {
        match self {
            Evidence::Manifest { file, document } => format!("{file} (document {document})"),
            Evidence::HelmRelease { release, namespace, revision } => {
                format!("Helm release {namespace}/{release} revision {revision}")
            }
            Evidence::LastApplied { object } => format!("last-applied annotation of {object}"),
            Evidence::ServedObjects { object } => format!("served object {object}"),
            Evidence::RequestMetric { resource } => format!("apiserver request metric for {resource}"),
        }
    }
}

/// One object seen through some evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedObject {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub evidence: Evidence,
}

impl ObservedObject {
    /// `(group, version)` of the object's apiVersion (`""` for the core group).
    pub fn group_version(&self) -> (&str, &str) {
        self.api_version.split_once('/').unwrap_or(("", &self.api_version))
    }

    pub fn reference(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.kind, self.name),
            None => format!("{} {}", self.kind, self.name),
        }
    }
}

/// Everything the planner reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Inventory {
    pub objects: Vec<ObservedObject>,
    /// Problems met while collecting (unparsable documents, unreadable files), each naming where.
    pub warnings: Vec<String>,
}
