//! Reading routerd's Prometheus endpoint the way a monitoring system would: plain HTTP with curl, checked by
//! Prometheus's own `promtool`.

use std::{
    io::Write,
    process::{Command, Stdio},
};

use crate::{
    command::Output,
    error::{IoContext, LabError},
    netns::Netns,
    programs,
};

/// routerd's metrics port (router7's).
pub const PORT: u16 = 8066;

/// `GET http://HOST:8066/metrics` from inside `netns`.
pub fn scrape(netns: &Netns, host: &str) -> Result<String, LabError> {
    let host = if host.contains(':') { format!("[{host}]") } else { host.to_string() };
    crate::clients::curl(netns, &format!("http://{host}:{PORT}/metrics"))
}

/// `promtool check metrics` on an exposition: success, and what promtool said.
pub fn promtool_check(exposition: &str) -> Result<Output, LabError> {
    let program = programs::PROMTOOL
        .locate()
        .ok_or_else(|| LabError::MissingPrograms(vec![(programs::PROMTOOL.name, programs::PROMTOOL.package)]))?;
    let mut child = Command::new(&program)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context(|| "starting promtool".to_string())?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(exposition.as_bytes()).context(|| "feeding promtool".to_string())?;
    }
    let output = child.wait_with_output().context(|| "waiting for promtool".to_string())?;
    Ok(Output {
        success: output.status.success(),
        status: output.status.to_string(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// The value of one series, e.g. `routerd_dns_queries_total{outcome="upstream"}`.
pub fn sample(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The sum of every series of a family (all label sets), e.g. all `routerd_dns_queries_total`.
pub fn sum(exposition: &str, family: &str) -> f64 {
    exposition
        .lines()
        .filter(|line| line.strip_prefix(family).is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' ')))
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_and_sums_are_read_by_exact_series() {
        let text = "# TYPE a_total counter\na_total{x=\"1\"} 2\na_total{x=\"2\"} 3.5\na_total_more 100\nb 7\n";
        assert_eq!(sample(text, "a_total{x=\"2\"}"), Some(3.5));
        assert_eq!(sample(text, "b"), Some(7.0));
        assert_eq!(sample(text, "a_total"), None, "a family with labels has no bare series");
        assert_eq!(sum(text, "a_total"), 5.5);
    }
}
