//! `rtrctl capture`: pcapng from the router to standard output or a file, as it arrives.

use std::{io::Write, path::Path};

use routerd_proto::v1 as pb;

use crate::{
    cli::{CaptureProtocolArg, Cli},
    error::CliError,
};

pub async fn run(
    cli: &Cli,
    file: Option<&Path>,
    no_backfill: bool,
    interfaces: &[String],
    protocols: &[CaptureProtocolArg],
) -> Result<(), CliError> {
    let mut out: Box<dyn Write> = match file {
        Some(path) => Box::new(
            std::fs::File::create(path).map_err(|e| CliError::Io(format!("creating {}: {e}", path.display())))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let protocols = protocols
        .iter()
        .map(|p| match p {
            CaptureProtocolArg::Dhcp4 => pb::CaptureProtocol::Dhcp4 as i32,
            CaptureProtocolArg::Dhcp6 => pb::CaptureProtocol::Dhcp6 as i32,
            CaptureProtocolArg::Icmp6 => pb::CaptureProtocol::Icmp6 as i32,
            CaptureProtocolArg::Dns => pb::CaptureProtocol::Dns as i32,
        })
        .collect();
    let request = pb::CaptureRequest { skip_backfill: no_backfill, interfaces: interfaces.to_vec(), protocols };
    let mut client = pb::capture_service_client::CaptureServiceClient::new(super::connect(cli).await?);
    let mut stream =
        client.capture(request).await.map_err(|status| CliError::from_status("capture", &status))?.into_inner();
    while let Some(chunk) = stream.message().await.map_err(|status| CliError::from_status("capture", &status))? {
        // Flushed per chunk, so a reader on a pipe (Wireshark) sees packets as they come.
        if out.write_all(&chunk.pcapng).and_then(|()| out.flush()).is_err() {
            // The reader went away (Wireshark closed): a normal end.
            return Ok(());
        }
    }
    Ok(())
}
