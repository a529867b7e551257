//! Renderers: turn documents into text for stdout (tables for people, JSON/YAML for machines,
//! DOT and Mermaid for pictures, a self-contained HTML page for plans and runs). Pure string
//! building; no I/O.

mod graphviz;
pub mod html;
mod plan;
mod table;

pub use graphviz::{path_dot, path_mermaid};
pub use plan::{plan_markdown, plan_table};
pub use table::{path_table, versions_table};

use serde::Serialize;

use super::CliError;

/// One JSON document, pretty-printed, newline-terminated.
pub fn json<T: Serialize>(doc: &T) -> Result<String, CliError> {
    let mut s = serde_json::to_string_pretty(doc).map_err(|e| CliError::error(format!("cannot render json: {e}")))?;
    s.push('\n');
    Ok(s)
}

/// One YAML document.
pub fn yaml<T: Serialize>(doc: &T) -> Result<String, CliError> {
    serde_saphyr::to_string(doc).map_err(|e| CliError::error(format!("cannot render yaml: {e}")))
}

/// Left-aligned columns separated by two spaces; the last column is not padded.
pub(crate) fn columns(rows: &[Vec<String>]) -> String {
    let ncols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; ncols];
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < row.len() {
                line.push_str(&" ".repeat(widths[i] - cell.chars().count() + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
