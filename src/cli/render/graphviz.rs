//! Pictures of the hop graph around a path: Graphviz DOT and Mermaid flowcharts.
//!
//! The path is drawn bold and numbered, other supported hops thin and grey, blocked hops dashed
//! red with their reason, and node rolls as notes on the control-plane version they follow.

use std::collections::BTreeMap;

use crate::graph::{Component, EdgeKind, UpgradePath};
use crate::version::Version;

fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Step number of each control-plane hop, by its (from, to).
type StepNumbers = BTreeMap<(Version, Version), usize>;
/// Node-roll labels, by the control-plane version they follow.
type RollLabels = BTreeMap<Version, Vec<String>>;

fn annotations(p: &UpgradePath) -> (StepNumbers, RollLabels) {
    let mut steps = BTreeMap::new();
    let mut rolls: BTreeMap<Version, Vec<String>> = BTreeMap::new();
    let mut cp = p.from.clone();
    for (i, h) in p.hops.iter().enumerate() {
        match h.component {
            Component::ControlPlane => {
                steps.insert((h.from.clone(), h.to.clone()), i + 1);
                cp = h.to.clone();
            }
            Component::Nodes => rolls.entry(cp.clone()).or_default().push(format!("step {}: nodes → {}", i + 1, h.to)),
        }
    }
    (steps, rolls)
}

pub fn path_dot(p: &UpgradePath) -> String {
    let (steps, rolls) = annotations(p);
    let mut out = String::new();
    out.push_str("digraph upgrade_path {\n");
    out.push_str(&format!(
        "  label=\"{} upgrade path {} → {}\";\n  labelloc=t;\n  rankdir=LR;\n  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n  edge [fontname=\"Helvetica\", fontsize=10];\n",
        dot_escape(&p.distro),
        p.from,
        p.to
    ));
    for v in &p.view.nodes {
        let mut label = v.to_string();
        for r in rolls.get(v).into_iter().flatten() {
            label.push_str(&format!("\n{r}"));
        }
        let mut attrs = vec![format!("label=\"{}\"", dot_escape(&label))];
        if *v == p.from {
            attrs.push("style=\"rounded,filled\", fillcolor=\"#e8e8e8\"".into());
        }
        if *v == p.to {
            attrs.push("peripheries=2".into());
        }
        out.push_str(&format!("  \"{v}\" [{}];\n", attrs.join(", ")));
    }
    for e in &p.view.edges {
        let attrs = if let Some((name, reason)) = &e.blocked {
            format!(
                "style=dashed, color=\"#d1242f\", fontcolor=\"#d1242f\", label=\"blocked: {}\", tooltip=\"{}\"",
                dot_escape(name),
                dot_escape(reason)
            )
        } else if e.on_path {
            let step = steps.get(&(e.from.clone(), e.to.clone())).copied().unwrap_or_default();
            let mut a = format!("penwidth=2.5, color=\"#1f6feb\", label=\"{step}\"");
            if let Some(name) = &e.prerequisite {
                a.push_str(&format!(", xlabel=\"first: {}\"", dot_escape(name)));
            } else if !e.unverified.is_empty() {
                a.push_str(&format!(", xlabel=\"check: {}\"", dot_escape(&e.unverified.join(", "))));
            }
            a
        } else {
            let kind = match e.kind {
                EdgeKind::Patch => "patch",
                EdgeKind::Minor => "minor",
                EdgeKind::Jump => "jump",
                EdgeKind::LtsSkip => "LTS skip",
            };
            format!("color=\"#9a9a9a\", tooltip=\"{kind}\"")
        };
        out.push_str(&format!("  \"{}\" -> \"{}\" [{attrs}];\n", e.from, e.to));
    }
    out.push_str("}\n");
    out
}

fn mermaid_id(v: &Version) -> String {
    format!("v{}", v.to_string().replace(|c: char| !c.is_ascii_alphanumeric(), "_"))
}

fn mermaid_text(s: &str) -> String {
    s.replace('"', "#quot;").replace('|', "#124;")
}

pub fn path_mermaid(p: &UpgradePath) -> String {
    let (steps, rolls) = annotations(p);
    let mut out = String::from("flowchart LR\n");
    for v in &p.view.nodes {
        let mut label = v.to_string();
        for r in rolls.get(v).into_iter().flatten() {
            label.push_str(&format!("<br/>{r}"));
        }
        let shape = if *v == p.to { ("((", "))") } else { ("[", "]") };
        out.push_str(&format!("  {}{}\"{}\"{}\n", mermaid_id(v), shape.0, mermaid_text(&label), shape.1));
    }
    let mut blocked_links = Vec::new();
    let mut path_links = Vec::new();
    for (link, e) in p.view.edges.iter().enumerate() {
        let (a, b) = (mermaid_id(&e.from), mermaid_id(&e.to));
        if let Some((name, _)) = &e.blocked {
            out.push_str(&format!("  {a} -. \"blocked: {}\" .-> {b}\n", mermaid_text(name)));
            blocked_links.push(link);
        } else if e.on_path {
            let step = steps.get(&(e.from.clone(), e.to.clone())).copied().unwrap_or_default();
            match &e.prerequisite {
                Some(name) => out.push_str(&format!("  {a} ==>|\"{step} after {}\"| {b}\n", mermaid_text(name))),
                None => out.push_str(&format!("  {a} ==>|\"{step}\"| {b}\n")),
            }
            path_links.push(link);
        } else {
            out.push_str(&format!("  {a} --> {b}\n"));
        }
    }
    let list = |v: &[usize]| v.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
    if !path_links.is_empty() {
        out.push_str(&format!("  linkStyle {} stroke:#1f6feb,stroke-width:3px\n", list(&path_links)));
    }
    if !blocked_links.is_empty() {
        out.push_str(&format!("  linkStyle {} stroke:#d1242f,stroke-dasharray:4\n", list(&blocked_links)));
    }
    out.push_str(&format!("  style {} fill:#e8e8e8\n", mermaid_id(&p.from)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{BlockedEdge, Catalog};
    use crate::graph::{Facts, PathRequest, find_path};

    #[test]
    fn blocked_edges_are_dashed_with_their_name() {
        let mut c = Catalog::embedded().unwrap();
        c.distros.get_mut("generic").unwrap().blocked_edges.push(BlockedEdge {
            name: "EarlyPatch\"Regression".into(),
            from: "<1.28.5".into(),
            to: "1.29".parse().unwrap(),
            reason: "breaks \"things\"".into(),
            fix: None,
            source: "https://example.org".into(),
            condition: None,
        });
        let req = PathRequest {
            distro: "generic".into(),
            from: "1.28.1".parse().unwrap(),
            to: "1.29".parse().unwrap(),
            via: vec![],
            kubelets: vec![],
            facts: Facts::default(),
            today: "2026-11-26".parse().unwrap(),
        };
        let p = find_path(&c, &req).unwrap();
        let dot = path_dot(&p);
        let final_129 =
            c.kubernetes.releases.iter().find(|r| r.minor.to_string() == "1.29").unwrap().latest_patch.clone();
        assert!(dot.contains(&format!("\"1.28.1\" -> \"{final_129}\" [style=dashed")), "{dot}");
        assert!(dot.contains(r#"label="blocked: EarlyPatch\"Regression""#), "quotes escaped: {dot}");
        let mermaid = path_mermaid(&p);
        let node = final_129.to_string().replace('.', "_");
        assert!(
            mermaid.contains(&format!("v1_28_1 -. \"blocked: EarlyPatch#quot;Regression\" .-> v{node}")),
            "{mermaid}"
        );
        assert!(mermaid.contains("stroke-dasharray"));
    }
}
