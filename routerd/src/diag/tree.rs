//! The dependency tree of checks, without I/O: nodes are decided in plan order (parents first), a failed node's
//! dependents are skipped naming the failure, and each decision is handed out as soon as it is made.

use std::time::{Duration, Instant, SystemTime};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Failed,
    /// Not evaluated: a check it depends on failed.
    Skipped,
}

/// A check to run, in the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Planned<C> {
    /// Stable identifier, e.g. `uplink/dhcp4`.
    pub id: String,
    /// The check this one depends on; it must come earlier in the plan.
    pub parent: Option<String>,
    pub title: String,
    pub check: C,
}

/// A decided node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decided {
    pub id: String,
    pub parent: Option<String>,
    pub title: String,
    pub outcome: Outcome,
    /// The measured value, the error, or `skipped: X failed`.
    pub detail: String,
    pub took: Duration,
}

/// One evaluation of the whole tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub nodes: Vec<Decided>,
    pub finished_at: SystemTime,
}

impl Report {
    pub fn healthy(&self) -> bool {
        self.failed().next().is_none()
    }

    pub fn failed(&self) -> impl Iterator<Item = &Decided> {
        self.nodes.iter().filter(|n| n.outcome == Outcome::Failed)
    }

    /// One line: "all N checks passed", or what failed and how many checks that skipped.
    pub fn summary(&self) -> String {
        let failed: Vec<String> = self.failed().map(|n| format!("{} ({})", n.id, n.detail)).collect();
        let skipped = self.nodes.iter().filter(|n| n.outcome == Outcome::Skipped).count();
        if failed.is_empty() {
            format!("all {} checks passed", self.nodes.len())
        } else {
            format!("{} failed: {}; {skipped} dependent checks skipped", failed.len(), failed.join(", "))
        }
    }
}

/// Runs checks: the I/O side of the tree.
pub(crate) trait Prober {
    type Check;
    /// `Ok(detail)` when the check passes, `Err(reason)` when it fails.
    fn probe(&self, check: &Self::Check) -> impl std::future::Future<Output = Result<String, String>> + Send;
}

/// Decides every node of `plan` in order, calling `emit` with each decision as it is made.
pub(crate) async fn evaluate<P: Prober>(
    plan: &[Planned<P::Check>],
    prober: &P,
    mut emit: impl FnMut(&Decided),
) -> Report {
    let mut nodes: Vec<Decided> = Vec::with_capacity(plan.len());
    // For each decided node that did not pass: the id of the failure behind it.
    let mut blocked_by: Vec<(String, String)> = Vec::new();
    for planned in plan {
        let cause = planned
            .parent
            .as_ref()
            .and_then(|parent| blocked_by.iter().find(|(id, _)| id == parent).map(|(_, cause)| cause.clone()));
        let started = Instant::now();
        let (outcome, detail) = match &cause {
            Some(cause) => (Outcome::Skipped, format!("skipped: {cause} failed")),
            None => match prober.probe(&planned.check).await {
                Ok(detail) => (Outcome::Ok, detail),
                Err(reason) => (Outcome::Failed, reason),
            },
        };
        match (outcome, cause) {
            (Outcome::Failed, _) => blocked_by.push((planned.id.clone(), planned.id.clone())),
            (Outcome::Skipped, Some(cause)) => blocked_by.push((planned.id.clone(), cause)),
            _ => {}
        }
        let decided = Decided {
            id: planned.id.clone(),
            parent: planned.parent.clone(),
            title: planned.title.clone(),
            outcome,
            detail,
            took: started.elapsed(),
        };
        emit(&decided);
        nodes.push(decided);
    }
    Report { nodes, finished_at: SystemTime::now() }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Passes every check except those named in the set.
    struct Failing(Vec<&'static str>);

    impl Prober for Failing {
        type Check = &'static str;
        async fn probe(&self, check: &&'static str) -> Result<String, String> {
            if self.0.contains(check) { Err(format!("{check} is broken")) } else { Ok(format!("{check} fine")) }
        }
    }

    fn plan() -> Vec<Planned<&'static str>> {
        let node = |id: &'static str, parent: Option<&str>| Planned {
            id: id.to_string(),
            parent: parent.map(String::from),
            title: id.to_string(),
            check: id,
        };
        vec![
            node("link", None),
            node("dhcp4", Some("link")),
            node("gateway", Some("dhcp4")),
            node("internet", Some("gateway")),
            node("dhcp6", Some("link")),
            node("lan0", None),
        ]
    }

    #[tokio::test]
    async fn a_healthy_tree_passes_every_node_in_plan_order() {
        let mut streamed = Vec::new();
        let report = evaluate(&plan(), &Failing(vec![]), |node| streamed.push(node.id.clone())).await;
        assert!(report.healthy());
        assert_eq!(streamed, vec!["link", "dhcp4", "gateway", "internet", "dhcp6", "lan0"]);
        assert_eq!(report.nodes[2].detail, "gateway fine");
        assert_eq!(report.summary(), "all 6 checks passed");
    }

    #[tokio::test]
    async fn a_failure_skips_its_dependents_naming_it_but_not_other_branches() {
        let report = evaluate(&plan(), &Failing(vec!["link"]), |_| {}).await;
        let outcomes: Vec<(&str, Outcome, &str)> =
            report.nodes.iter().map(|n| (n.id.as_str(), n.outcome, n.detail.as_str())).collect();
        assert_eq!(
            outcomes,
            vec![
                ("link", Outcome::Failed, "link is broken"),
                ("dhcp4", Outcome::Skipped, "skipped: link failed"),
                ("gateway", Outcome::Skipped, "skipped: link failed"),
                ("internet", Outcome::Skipped, "skipped: link failed"),
                ("dhcp6", Outcome::Skipped, "skipped: link failed"),
                ("lan0", Outcome::Ok, "lan0 fine"),
            ]
        );
        assert!(!report.healthy());
        assert_eq!(report.failed().map(|n| n.id.as_str()).collect::<Vec<_>>(), vec!["link"]);
        assert_eq!(report.summary(), "1 failed: link (link is broken); 4 dependent checks skipped");
    }

    #[tokio::test]
    async fn a_failure_deeper_down_skips_only_below_it() {
        let report = evaluate(&plan(), &Failing(vec!["gateway", "lan0"]), |_| {}).await;
        let failed: Vec<&str> = report.failed().map(|n| n.id.as_str()).collect();
        assert_eq!(failed, vec!["gateway", "lan0"]);
        assert_eq!(report.nodes[3].detail, "skipped: gateway failed");
        assert_eq!(report.nodes[4].outcome, Outcome::Ok);
    }
}
