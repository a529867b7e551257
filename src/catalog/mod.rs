//! The upgrade-paths catalog: everything k8s-upgrade knows about versions, distros, removed APIs
//! and add-ons, loaded through one validating loader.
//!
//! The YAML files of `upgrade-paths/` are embedded at build time ([`Catalog::embedded`]); the CLI
//! can hand in a newer copy read from `--paths DIR` ([`Catalog::from_sources`]). This module never
//! touches the filesystem itself: callers give it file names and contents, so loading stays pure
//! and every error names the file, the entry and the field. `docs/catalog.md` documents the
//! format.

mod date;
pub mod generate;
pub mod lifecycle;
pub mod schema;
pub mod served;
mod validate;

use std::collections::BTreeMap;

pub use date::{Date, DateError};
pub use schema::*;

use crate::version::{Minor, Version};

/// Largest catalog file accepted from `--paths DIR`.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Names of the distros every catalog must describe.
pub const REQUIRED_DISTROS: [&str; 7] = ["generic", "kubeadm", "eks", "gke", "aks", "k3s", "rke2"];

/// Files every catalog holds besides `distros/*.yaml`.
pub const CORE_FILES: [&str; 4] = ["kubernetes.yaml", "skew.yaml", "apis.yaml", "addons.yaml"];

macro_rules! embedded {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/upgrade-paths/", $path)))),*]
    };
}

/// The catalog compiled into this binary, as (relative path, contents).
pub const EMBEDDED: &[(&str, &str)] = embedded!(
    "kubernetes.yaml",
    "skew.yaml",
    "apis.yaml",
    "addons.yaml",
    "distros/generic.yaml",
    "distros/kubeadm.yaml",
    "distros/eks.yaml",
    "distros/gke.yaml",
    "distros/aks.yaml",
    "distros/k3s.yaml",
    "distros/rke2.yaml",
);

/// One catalog file handed to the loader.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Path relative to the catalog root, e.g. `distros/eks.yaml`.
    pub name: String,
    pub text: String,
}

/// Why a catalog could not be loaded. Each variant names the file; `Invalid` also names the entry
/// and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog file {file}: {message}")]
    Parse { file: String, message: String },
    #[error("catalog file {file}: {entry}: field '{field}': {message}")]
    Invalid { file: String, entry: String, field: String, message: String },
    #[error("catalog file {file} is missing; a catalog directory holds {expected}")]
    Missing { file: String, expected: String },
    #[error(
        "catalog file {file}: schemaVersion {found} is not supported (this build reads {supported}); use data made for this version of k8s-upgrade"
    )]
    Schema { file: String, found: u32, supported: u32 },
    #[error("cannot read catalog file {file}: {message}")]
    Io { file: String, message: String },
}

/// A loaded and validated catalog.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// Where the data came from (`embedded` or a directory), for messages.
    pub origin: String,
    pub kubernetes: KubernetesFile,
    pub skew: SkewFile,
    pub apis: ApisFile,
    pub addons: AddonsFile,
    pub distros: BTreeMap<String, DistroFile>,
}

fn parse_yaml<T: serde::de::DeserializeOwned>(file: &str, text: &str) -> Result<T, CatalogError> {
    // The schema version first: a file of another schema is named as that, not as the first
    // field this build misses in it.
    #[derive(serde::Deserialize)]
    struct Head {
        #[serde(rename = "schemaVersion")]
        schema_version: Option<u32>,
    }
    if let Ok(Head { schema_version: Some(found) }) = serde_saphyr::from_str::<Head>(text) {
        check_schema(file, found)?;
    }
    let options = serde_saphyr::options! { with_snippet: false };
    serde_saphyr::from_str_with_options(text, options).map_err(|e| CatalogError::Parse {
        file: file.to_string(),
        message: e.to_string().lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; "),
    })
}

fn check_schema(file: &str, found: u32) -> Result<(), CatalogError> {
    if found == SCHEMA_VERSION {
        Ok(())
    } else {
        Err(CatalogError::Schema { file: file.to_string(), found, supported: SCHEMA_VERSION })
    }
}

impl Catalog {
    /// The catalog embedded in the binary.
    pub fn embedded() -> Result<Catalog, CatalogError> {
        let files =
            EMBEDDED.iter().map(|(name, text)| SourceFile { name: (*name).to_string(), text: (*text).to_string() });
        Catalog::from_sources("embedded", files.collect())
    }

    /// Parses and validates a catalog from its files.
    pub fn from_sources(origin: &str, files: Vec<SourceFile>) -> Result<Catalog, CatalogError> {
        let expected = || format!("{} and distros/{{{}}}.yaml", CORE_FILES.join(", "), REQUIRED_DISTROS.join(","));
        let mut by_name: BTreeMap<String, String> = files.into_iter().map(|f| (f.name, f.text)).collect();
        let mut take = |name: &str| {
            by_name.remove(name).ok_or_else(|| CatalogError::Missing { file: name.to_string(), expected: expected() })
        };
        let kubernetes: KubernetesFile = parse_yaml("kubernetes.yaml", &take("kubernetes.yaml")?)?;
        check_schema("kubernetes.yaml", kubernetes.schema_version)?;
        let skew: SkewFile = parse_yaml("skew.yaml", &take("skew.yaml")?)?;
        check_schema("skew.yaml", skew.schema_version)?;
        let apis: ApisFile = parse_yaml("apis.yaml", &take("apis.yaml")?)?;
        check_schema("apis.yaml", apis.schema_version)?;
        let addons: AddonsFile = parse_yaml("addons.yaml", &take("addons.yaml")?)?;
        check_schema("addons.yaml", addons.schema_version)?;
        let mut distros = BTreeMap::new();
        for (name, text) in by_name {
            let Some(stem) = name.strip_prefix("distros/").and_then(|n| n.strip_suffix(".yaml")) else {
                continue;
            };
            let distro: DistroFile = parse_yaml(&name, &text)?;
            check_schema(&name, distro.schema_version)?;
            if distro.name != stem {
                return Err(CatalogError::Invalid {
                    file: name.clone(),
                    entry: "top level".into(),
                    field: "name".into(),
                    message: format!("'{}' does not match the file name '{stem}'", distro.name),
                });
            }
            distros.insert(stem.to_string(), distro);
        }
        for required in REQUIRED_DISTROS {
            if !distros.contains_key(required) {
                return Err(CatalogError::Missing { file: format!("distros/{required}.yaml"), expected: expected() });
            }
        }
        let catalog = Catalog { origin: origin.to_string(), kubernetes, skew, apis, addons, distros };
        validate::validate(&catalog)?;
        Ok(catalog)
    }

    /// Upstream facts about one minor.
    pub fn release(&self, minor: Minor) -> Option<&Release> {
        self.kubernetes.releases.iter().find(|r| r.minor == minor)
    }

    pub fn oldest_minor(&self) -> Minor {
        self.kubernetes.releases.first().map(|r| r.minor).unwrap_or(Minor::new(1, 19))
    }

    pub fn newest_minor(&self) -> Minor {
        self.kubernetes.releases.last().map(|r| r.minor).unwrap_or(Minor::new(1, 19))
    }

    pub fn distro(&self, name: &str) -> Option<&DistroFile> {
        self.distros.get(name)
    }

    pub fn distro_names(&self) -> Vec<&str> {
        self.distros.keys().map(String::as_str).collect()
    }

    /// The minors a distro offers, ascending.
    pub fn offered_minors(&self, distro: &DistroFile) -> Vec<Minor> {
        match distro.offers {
            Offers::Upstream => self.kubernetes.releases.iter().map(|r| r.minor).collect(),
            Offers::Listed => {
                let mut minors: Vec<Minor> = distro.versions.iter().map(|v| v.minor).collect();
                minors.sort();
                minors.dedup();
                minors
            }
        }
    }

    /// The distro's own facts about a minor, if it lists any.
    pub fn distro_version<'a>(&self, distro: &'a DistroFile, minor: Minor) -> Option<&'a DistroVersion> {
        distro.versions.iter().find(|v| v.minor == minor)
    }

    /// The newest patch of `minor` on `distro`: the distro's own figure, else upstream's.
    pub fn latest_patch(&self, distro: &DistroFile, minor: Minor) -> Option<Version> {
        self.distro_version(distro, minor)
            .and_then(|v| v.latest_patch.clone())
            .or_else(|| self.release(minor).map(|r| r.latest_patch.clone()))
            .map(|v| v.without_suffix())
    }

    /// The skew rule for one component (`kubelet`, `kube-proxy`, ...).
    pub fn component_skew(&self, name: &str) -> Option<&ComponentSkew> {
        self.skew.components.iter().find(|c| c.name == name)
    }

    pub fn addon(&self, name: &str) -> Option<&Addon> {
        self.addons.addons.iter().find(|a| a.name == name)
    }

    /// The newest `dataDate` of all files: how fresh the catalog is.
    pub fn data_date(&self) -> Date {
        let mut dates =
            vec![self.kubernetes.data_date, self.skew.data_date, self.apis.data_date, self.addons.data_date];
        dates.extend(self.distros.values().map(|d| d.data_date));
        dates.into_iter().max().unwrap_or(self.kubernetes.data_date)
    }
}

#[cfg(test)]
mod tests;
