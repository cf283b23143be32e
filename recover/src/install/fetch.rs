//! The installer's side of the HTTP conversation with routerd-recover.

use std::{io::Read, time::Duration};

use super::error::InstallError;
use crate::protocol::{self, Artifact, Manifest, Report};

pub struct Server {
    agent: ureq::Agent,
    base: String,
    session: String,
}

fn network(error: impl std::fmt::Display) -> InstallError {
    InstallError::Network(error.to_string())
}

impl Server {
    /// `base` is `http://ADDRESS:PORT`; `session` identifies routerd-recover's run. A read that stalls for 30 s
    /// (a pulled cable) fails the transfer.
    pub fn new(base: &str, session: &str) -> Server {
        let config = ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_per_read(Some(Duration::from_secs(30)))
            .timeout_per_write(Some(Duration::from_secs(30)))
            .build();
        Server {
            agent: ureq::Agent::new_with_config(config),
            base: base.trim_end_matches('/').to_string(),
            session: session.to_string(),
        }
    }

    pub fn manifest(&self) -> Result<Manifest, InstallError> {
        let url = format!("{}{}", self.base, protocol::MANIFEST_PATH);
        let mut response = self
            .agent
            .get(&url)
            .header(protocol::SESSION_HEADER, &self.session)
            .call()
            .map_err(|e| network(format!("GET {url}: {e}")))?;
        let text = response
            .body_mut()
            .with_config()
            .limit(64 << 10)
            .read_to_string()
            .map_err(|e| network(format!("GET {url}: {e}")))?;
        serde_json::from_str(&text).map_err(|e| network(format!("{url}: not a manifest: {e}")))
    }

    /// The body of `path`, exactly `artifact.size` bytes long (a longer one is cut off, a shorter one fails
    /// its hash).
    pub fn download(&self, path: &str, artifact: &Artifact) -> Result<impl Read + use<>, InstallError> {
        let url = format!("{}{path}", self.base);
        let response = self
            .agent
            .get(&url)
            .header(protocol::SESSION_HEADER, &self.session)
            .call()
            .map_err(|e| network(format!("GET {url}: {e}")))?;
        Ok(response.into_body().into_with_config().limit(artifact.size).reader())
    }

    /// Tells routerd-recover how far the install is. A report that does not arrive is only printed here: the
    /// install goes on.
    pub fn report(&self, report: &Report) {
        if report.total > 0 {
            println!("recover: [{}] {}: {} of {} bytes", report.step, report.message, report.done, report.total);
        } else {
            println!("recover: [{}] {}", report.step, report.message);
        }
        let url = format!("{}{}", self.base, protocol::REPORT_PATH);
        let body = serde_json::to_vec(report).unwrap_or_default();
        if let Err(error) = self
            .agent
            .post(&url)
            .header("content-type", "application/json")
            .header(protocol::SESSION_HEADER, &self.session)
            .send(&body[..])
        {
            println!("recover: reporting to {url}: {error}");
        }
    }
}
