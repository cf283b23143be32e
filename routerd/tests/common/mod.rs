//! A routerd started in-process on a loopback port with a temporary --perm, and clients for it.
#![allow(dead_code)]

use std::{net::SocketAddr, path::Path};

use routerd::{
    daemon::{self, Running},
    pki::{Authority, PkiPaths, Validity},
};
use routerd_proto::identity::Identity;
use rtrctl::{
    connect::{self, RouterAddr},
    error::CliError,
};
use tonic::transport::Channel;

pub(crate) struct TestRouter {
    pub perm: tempfile::TempDir,
    pub addr: SocketAddr,
    pub authority: Authority,
    running: Option<Running>,
}

impl TestRouter {
    pub(crate) async fn start() -> TestRouter {
        let perm = tempfile::tempdir().expect("tempdir");
        Self::start_in(perm).await
    }

    pub(crate) async fn start_in(perm: tempfile::TempDir) -> TestRouter {
        let running = daemon::start(daemon::Options {
            perm: perm.path().to_path_buf(),
            listen: vec!["127.0.0.1:0".parse().expect("addr")],
            metrics_listen: vec!["127.0.0.1:0".parse().expect("addr")],
        })
        .await
        .expect("routerd starts");
        let addr = running.listen_addrs[0];
        let authority = Authority::load_or_create(PkiPaths::new(perm.path()), "test").expect("authority");
        TestRouter { perm, addr, authority, running: Some(running) }
    }

    pub(crate) fn router_addr(&self) -> RouterAddr {
        RouterAddr { host: "127.0.0.1".into(), port: self.addr.port() }
    }

    /// Issues an identity as `routerd pki issue-client` does.
    pub(crate) fn identity(&self, name: &str) -> Identity {
        self.identity_with(name, Validity::default())
    }

    pub(crate) fn identity_with(&self, name: &str, validity: Validity) -> Identity {
        identity_from(&self.authority, name, validity)
    }

    pub(crate) async fn channel(&self, identity: &Identity) -> Result<Channel, CliError> {
        connect::channel(&self.router_addr(), connect::identity_tls(identity)?).await
    }

    pub(crate) fn restart_requested(&self) -> tokio::sync::watch::Receiver<bool> {
        self.running.as_ref().expect("running").restart_requested()
    }

    pub(crate) async fn shutdown(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
    }
}

pub(crate) fn identity_from(authority: &Authority, name: &str, validity: Validity) -> Identity {
    let (cert, key) = authority.issue_client(name, validity).expect("issue");
    let pem = routerd_proto::identity::to_pem(name, &cert, &key, authority.ca_pem());
    Identity::from_pem(pem.as_bytes()).expect("identity parses")
}

/// Another router's CA, in its own directory.
pub(crate) fn other_authority(dir: &Path) -> Authority {
    Authority::load_or_create(PkiPaths::new(dir), "other").expect("other authority")
}
