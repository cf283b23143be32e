//! `rtrctl diag`: the router's tree of checks, drawn as it streams in (or one JSON document with the same tree).

use std::io::Write;

use routerd_proto::v1 as pb;
use serde::Serialize;

use crate::{cli::Cli, error::CliError, output::Format};

/// One check in `rtrctl -o json diag`, with the checks that depend on it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct CheckDoc {
    pub id: String,
    pub title: String,
    /// ok, failed or skipped
    pub outcome: String,
    pub detail: String,
    pub took_ms: f64,
    pub children: Vec<CheckDoc>,
}

#[derive(Debug, Serialize)]
pub struct DiagDoc {
    pub healthy: bool,
    pub summary: String,
    pub checks: Vec<CheckDoc>,
}

fn outcome_name(outcome: i32) -> &'static str {
    match pb::CheckOutcome::try_from(outcome) {
        Ok(pb::CheckOutcome::Ok) => "ok",
        Ok(pb::CheckOutcome::Failed) => "failed",
        Ok(pb::CheckOutcome::Skipped) => "skipped",
        _ => "unknown",
    }
}

fn mark(outcome: i32) -> &'static str {
    match outcome_name(outcome) {
        "ok" => "✔",
        "failed" => "✘",
        _ => "○",
    }
}

/// Nests the streamed nodes by their parent ids (a node whose parent never came is shown as a root).
pub fn tree(nodes: &[pb::DiagnosticNode]) -> Vec<CheckDoc> {
    fn children_of(parent: &str, nodes: &[pb::DiagnosticNode]) -> Vec<CheckDoc> {
        nodes
            .iter()
            .filter(|n| n.parent_id == parent)
            .map(|n| CheckDoc {
                id: n.id.clone(),
                title: n.title.clone(),
                outcome: outcome_name(n.outcome).to_string(),
                detail: n.detail.clone(),
                took_ms: n.took.map(|t| t.seconds as f64 * 1e3 + f64::from(t.nanos) / 1e6).unwrap_or(0.0),
                children: children_of(&n.id, nodes),
            })
            .collect()
    }
    let known = |id: &str| nodes.iter().any(|n| n.id == id);
    let mut roots = children_of("", nodes);
    for orphan in nodes.iter().filter(|n| !n.parent_id.is_empty() && !known(&n.parent_id)) {
        roots.extend(children_of(&orphan.parent_id, std::slice::from_ref(orphan)));
    }
    roots
}

/// "all N checks passed" or what failed.
pub fn summary(nodes: &[pb::DiagnosticNode]) -> (bool, String) {
    let failed: Vec<&str> =
        nodes.iter().filter(|n| outcome_name(n.outcome) == "failed").map(|n| n.id.as_str()).collect();
    let skipped = nodes.iter().filter(|n| outcome_name(n.outcome) == "skipped").count();
    if failed.is_empty() {
        (true, format!("healthy: all {} checks passed", nodes.len()))
    } else {
        (false, format!("unhealthy: {} failed ({}), {skipped} skipped", failed.len(), failed.join(", ")))
    }
}

/// One line of the drawn tree: indented by depth.
fn line(node: &pb::DiagnosticNode, depth: usize) -> String {
    let indent = if depth == 0 { String::new() } else { format!("{}└─ ", "   ".repeat(depth - 1)) };
    format!("{indent}{} {}: {}", mark(node.outcome), node.title, node.detail)
}

/// `rtrctl -o json diag --health`.
#[derive(Debug, Serialize)]
pub struct HealthDoc {
    pub healthy: bool,
    pub failed: Vec<String>,
    pub summary: String,
}

pub async fn run(cli: &Cli, health_only: bool) -> Result<(), CliError> {
    let mut client = pb::diagnostics_service_client::DiagnosticsServiceClient::new(super::connect(cli).await?);
    if health_only {
        let health = client
            .get_health(pb::GetHealthRequest {})
            .await
            .map_err(|status| CliError::from_status("diag --health", &status))?
            .into_inner();
        let doc = HealthDoc { healthy: health.healthy, failed: health.failed, summary: health.summary };
        match cli.output {
            Format::Json => crate::output::print_json(&doc)?,
            Format::Table => println!("{}: {}", if doc.healthy { "healthy" } else { "unhealthy" }, doc.summary),
        }
        return if doc.healthy { Ok(()) } else { Err(CliError::Negative(format!("unhealthy: {}", doc.summary))) };
    }
    let mut stream = client
        .run_diagnostics(pb::RunDiagnosticsRequest {})
        .await
        .map_err(|status| CliError::from_status("diag", &status))?
        .into_inner();
    let mut nodes: Vec<pb::DiagnosticNode> = Vec::new();
    let mut depths: Vec<(String, usize)> = Vec::new();
    while let Some(response) = stream.message().await.map_err(|status| CliError::from_status("diag", &status))? {
        let Some(node) = response.node else { continue };
        if cli.output == Format::Table {
            let depth = depths.iter().find(|(id, _)| *id == node.parent_id).map(|(_, d)| d + 1).unwrap_or(0);
            depths.push((node.id.clone(), depth));
            println!("{}", line(&node, depth));
            let _ = std::io::stdout().flush();
        }
        nodes.push(node);
    }
    let (healthy, summary) = summary(&nodes);
    match cli.output {
        Format::Json => {
            crate::output::print_json(&DiagDoc { healthy, summary: summary.clone(), checks: tree(&nodes) })?
        }
        Format::Table => println!("\n{summary}"),
    }
    if healthy { Ok(()) } else { Err(CliError::Negative(summary)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, parent: &str, outcome: pb::CheckOutcome) -> pb::DiagnosticNode {
        pb::DiagnosticNode {
            id: id.into(),
            parent_id: parent.into(),
            title: id.into(),
            outcome: outcome as i32,
            detail: format!("{id} detail"),
            took: None,
        }
    }

    #[test]
    fn nodes_nest_by_parent_and_a_failure_is_summarised() {
        let nodes = vec![
            node("uplink/link", "", pb::CheckOutcome::Failed),
            node("uplink/dhcp4", "uplink/link", pb::CheckOutcome::Skipped),
            node("lan/lan0/link", "", pb::CheckOutcome::Ok),
            node("stray", "gone", pb::CheckOutcome::Ok),
        ];
        let tree = tree(&nodes);
        assert_eq!(
            tree.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
            vec!["uplink/link", "lan/lan0/link", "stray"]
        );
        assert_eq!(tree[0].children[0].id, "uplink/dhcp4");
        assert_eq!(tree[0].children[0].outcome, "skipped");
        assert_eq!(summary(&nodes), (false, "unhealthy: 1 failed (uplink/link), 1 skipped".to_string()));
        assert_eq!(line(&nodes[1], 1), "└─ ○ uplink/dhcp4: uplink/dhcp4 detail");
        assert_eq!(line(&nodes[0], 0), "✘ uplink/link: uplink/link detail");
    }
}
