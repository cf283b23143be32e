//! TFTP for the network boot: the netboot directory, read-only, on the workstation's address only.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::Path,
};

use super::RecoverError;

/// A TFTP server for `dir` bound to `address`:69, ready to run.
pub async fn start(
    dir: &Path,
    address: Ipv4Addr,
) -> Result<impl std::future::Future<Output = Result<(), RecoverError>> + Send + 'static, RecoverError> {
    let failed = |e: async_tftp::Error| RecoverError::Io {
        what: "TFTP on port 69".into(),
        source: std::io::Error::other(e.to_string()),
    };
    let server = async_tftp::server::TftpServerBuilder::with_dir_ro(dir)
        .map_err(failed)?
        .bind(SocketAddr::new(IpAddr::V4(address), 69))
        .build()
        .await
        .map_err(failed)?;
    Ok(async move { server.serve().await.map_err(failed) })
}
