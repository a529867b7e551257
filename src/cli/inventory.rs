//! `k8s-upgrade inventory`: read a cluster (or the simulator) once and print the inventory, to
//! review it or to plan later offline with `plan --inventory FILE`.

use clap::{Args, ValueEnum};

use super::args::CatalogArgs;
use super::source::SourceArgs;
use super::{CliError, Exit, print_stdout, render};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InventoryFormat {
    Yaml,
    Json,
}

#[derive(Debug, Clone, Args)]
#[command(
    after_help = "Examples:\n  k8s-upgrade inventory -o yaml > inv.yaml\n  k8s-upgrade plan --inventory inv.yaml --to 1.31"
)]
pub struct InventoryArgs {
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = InventoryFormat::Yaml)]
    pub output: InventoryFormat,

    #[command(flatten)]
    pub source: SourceArgs,

    #[command(flatten)]
    pub catalog: CatalogArgs,
}

pub fn run(args: InventoryArgs) -> Result<Exit, CliError> {
    let catalog = args.catalog.load()?;
    let inv = args.source.collect(&catalog, args.source.inventory.is_none())?;
    for w in &inv.warnings {
        super::logging::warn(&w.to_string());
    }
    let text = match args.output {
        InventoryFormat::Yaml => render::yaml(&inv)?,
        InventoryFormat::Json => render::json(&inv)?,
    };
    print_stdout(&text)?;
    Ok(Exit::Success)
}
