//! The flags of the provider upgraders (`--upgrader eks|gke|aks`): which cluster at the
//! provider, which CLI runs, and how long its calls and waits may take.

use std::time::Duration;

use clap::Args;

use super::CliError;
use crate::exec::managed::{ManagedCli, Provider};

#[derive(Debug, Clone, Args)]
pub struct ProviderArgs {
    /// With --upgrader eks|gke|aks: the cluster's name at the provider.
    #[arg(long, value_name = "NAME", env = "K8S_UPGRADE_CLUSTER_NAME")]
    pub cluster_name: Option<String>,

    /// With --upgrader eks: the AWS region (default: the aws CLI's configured region).
    #[arg(long, value_name = "REGION", env = "K8S_UPGRADE_REGION")]
    pub region: Option<String>,

    /// With --upgrader gke: the cluster's location (a region or zone).
    #[arg(long, value_name = "LOCATION", env = "K8S_UPGRADE_LOCATION")]
    pub location: Option<String>,

    /// With --upgrader gke: the Google Cloud project (default: gcloud's configured project).
    #[arg(long, value_name = "PROJECT", env = "K8S_UPGRADE_PROJECT")]
    pub project: Option<String>,

    /// With --upgrader aks: the cluster's resource group.
    #[arg(long, value_name = "GROUP", env = "K8S_UPGRADE_RESOURCE_GROUP")]
    pub resource_group: Option<String>,

    /// The provider's CLI (default: aws, gcloud or az from PATH).
    #[arg(long, value_name = "PATH", env = "K8S_UPGRADE_PROVIDER_CLI")]
    pub provider_cli: Option<String>,

    /// Time between two reads of a provider's update (EKS describe-update).
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = super::apply::parse_duration)]
    pub provider_poll: Duration,

    /// A provider call that answers at once (start an EKS update, read one) is stopped after this.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = super::apply::parse_duration)]
    pub provider_call_timeout: Duration,

    /// A managed control-plane upgrade (or an EKS add-on update) may take this long.
    #[arg(long, value_name = "DURATION", default_value = "90m", value_parser = super::apply::parse_duration)]
    pub control_plane_timeout: Duration,

    /// A managed pool's replacement may take this long (default: --node-timeout for each of
    /// its nodes, plus one).
    #[arg(long, value_name = "DURATION", value_parser = super::apply::parse_duration)]
    pub pool_timeout: Option<Duration>,
}

impl ProviderArgs {
    /// The validated provider settings for `provider`.
    pub fn managed(&self, provider: Provider) -> Result<ManagedCli, CliError> {
        let m = ManagedCli {
            provider,
            cli: self.provider_cli.clone().unwrap_or_else(|| provider.default_cli().to_string()),
            cluster: self.cluster_name.clone().unwrap_or_default(),
            region: self.region.clone(),
            location: self.location.clone(),
            project: self.project.clone(),
            resource_group: self.resource_group.clone(),
            call_timeout: self.provider_call_timeout,
            upgrade_timeout: self.control_plane_timeout,
            pool_timeout: self.pool_timeout,
            poll: self.provider_poll.max(Duration::from_millis(10)),
        };
        m.validate().map_err(CliError::usage)?;
        let stray: Vec<&str> = [
            ("--region", self.region.is_some() && provider != Provider::Eks),
            ("--location", self.location.is_some() && provider != Provider::Gke),
            ("--project", self.project.is_some() && provider != Provider::Gke),
            ("--resource-group", self.resource_group.is_some() && provider != Provider::Aks),
        ]
        .iter()
        .filter(|(_, stray)| *stray)
        .map(|(f, _)| *f)
        .collect();
        if !stray.is_empty() {
            return Err(CliError::usage(format!(
                "{} do(es) not apply to --upgrader {}",
                stray.join(", "),
                provider.name()
            )));
        }
        Ok(m)
    }
}
