//! routerd-recover: serves a router a network boot into the installer, then the image and the backup, and
//! follows the install through the installer's reports.

pub mod dhcp;
pub mod http;
pub mod progress;
pub mod tftp;

use std::{
    io::Read,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    sync::Arc,
};

use tokio::sync::mpsc;

use crate::protocol::{self, Artifact, Manifest, Outcome, Report};

#[derive(Debug, clap::Parser)]
#[command(
    name = "routerd-recover",
    version,
    about = "Reinstalls a routerd router over the network (PXE), with /perm restored from a backup",
    long_about = "Reinstalls a routerd router over the network (PXE), with /perm restored from a backup.\n\n\
                  Cable INTERFACE to the router's LAN port, give INTERFACE an IPv4 address (for example \
                  `ip addr add 192.168.99.1/24 dev INTERFACE`), run this as root, then boot the router from the \
                  network (apu2: press F10 on the serial console at power-on and choose the iPXE entry). Only PXE \
                  clients (or only --mac) get an address. Exits 0 once the router reports a good install."
)]
pub struct Args {
    /// The workstation's interface cabled to the router.
    #[arg(long)]
    pub interface: String,
    /// The disk image to install (`routerd-image build`).
    #[arg(long)]
    pub image: PathBuf,
    /// A backup (`rtrctl backup create`) to restore into /perm: the router keeps its CA, so paired rtrctl
    /// identities work at once, and its interfaces, port forwards and static leases.
    #[arg(long)]
    pub backup: Option<PathBuf>,
    /// Serve only the machine with this MAC (whatever its firmware says it is).
    #[arg(long)]
    pub mac: Option<String>,
    /// The router's disk to write (`sda`), when it has several that could be its disk.
    #[arg(long)]
    pub disk: Option<String>,
    /// The HTTP port the installer fetches from.
    #[arg(long, default_value_t = 8067)]
    pub port: u16,
    /// routerd-install and the kernel for the network boot.
    #[command(flatten)]
    pub sources: routerd_image::SourceArgs,
}

#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    #[error("{0}")]
    Usage(String),
    #[error("--image {path}: {reason}")]
    Image { path: PathBuf, reason: String },
    #[error("--backup {path}: {reason}; nothing was served")]
    Backup { path: PathBuf, reason: String },
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("building the network boot: {0}")]
    Netboot(#[from] routerd_image::error::ImageError),
    #[error("the router reports a failed install at step {step}: {message}")]
    InstallFailed { step: String, message: String },
    #[error(
        "the router has not reported for {0} s (a pulled cable? a dead router?): run routerd-recover again and \
         boot the router from the network again (a disk the install had begun to write no longer boots, so the \
         router falls through to the network boot by itself)"
    )]
    Stalled(u64),
}

/// How long the installer may stay quiet during an install (it reports at least every second while it works,
/// and gives up on a transfer that stalls for 30 s).
const STALL: std::time::Duration = std::time::Duration::from_secs(90);

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> RecoverError {
    let what = what.into();
    move |source| RecoverError::Io { what, source }
}

/// Checks that `path` is a routerd disk image (its MBR carries the image's disk id) and returns its manifest
/// entry.
pub fn check_image(path: &Path) -> Result<Artifact, RecoverError> {
    let refused = |reason: String| RecoverError::Image { path: path.to_path_buf(), reason };
    let mut file = std::fs::File::open(path).map_err(|e| refused(e.to_string()))?;
    let size = file.metadata().map_err(|e| refused(e.to_string()))?.len();
    let mut sector = [0u8; 512];
    if size < 512 || file.read_exact(&mut sector).is_err() {
        return Err(refused(format!("{size} bytes: too short for a disk image")));
    }
    if routerd_init::layout::mbr_disk_id(&sector) != Some(routerd_init::layout::DISK_ID) {
        return Err(refused(
            "not a routerd disk image (its MBR lacks routerd's disk id): build one with `routerd-image build`".into(),
        ));
    }
    if size % 512 != 0 {
        return Err(refused(format!("{size} bytes: not a whole number of sectors")));
    }
    let (_, sha256) = routerd_image::sha256_file(path).map_err(|e| refused(e.to_string()))?;
    Ok(Artifact { size, sha256 })
}

/// Checks the backup as `rtrctl backup restore` does (format, limits, and /perm loaded as routerd would).
pub fn check_backup(path: &Path) -> Result<Artifact, RecoverError> {
    let refused = |reason: String| RecoverError::Backup { path: path.to_path_buf(), reason };
    let size = std::fs::metadata(path).map_err(|e| refused(e.to_string()))?.len();
    if size > protocol::MAX_BACKUP {
        return Err(refused(format!("{size} bytes, more than a backup has")));
    }
    let bytes = std::fs::read(path).map_err(|e| refused(e.to_string()))?;
    let scratch = tempfile::tempdir().map_err(|e| refused(format!("a scratch directory: {e}")))?;
    crate::install::perm::check(&bytes, &scratch.path().join("perm")).map_err(|e| refused(e.to_string()))?;
    let sha256 = routerd_proto::hex(ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref());
    Ok(Artifact { size, sha256 })
}

/// 16 random bytes as hex: this run's token.
fn session_token() -> Result<String, RecoverError> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new().fill(&mut bytes).map_err(|_| RecoverError::Io {
        what: "a session token".into(),
        source: std::io::Error::other("no randomness"),
    })?;
    Ok(routerd_proto::hex(&bytes))
}

/// The interface's IPv4 address and prefix length.
fn interface_address(interface: &str) -> Result<(Ipv4Addr, u8), RecoverError> {
    let addresses = routerd::sys::interfaces::addresses().map_err(io("listing addresses"))?;
    if !routerd::system::interface_exists(interface) {
        return Err(RecoverError::Usage(format!("--interface {interface}: no such interface")));
    }
    addresses
        .into_iter()
        .find_map(|(name, address, prefix)| match address {
            IpAddr::V4(v4) if name == interface => Some((v4, prefix)),
            _ => None,
        })
        .ok_or_else(|| {
            RecoverError::Usage(format!(
                "--interface {interface} has no IPv4 address: give it one first, e.g. `ip addr add 192.168.99.1/24 dev {interface}`"
            ))
        })
}

/// Runs the recovery; returns the installer's final message.
pub async fn run(args: Args) -> Result<String, RecoverError> {
    // SAFETY: no arguments.
    if unsafe { libc::geteuid() } != 0 {
        return Err(RecoverError::Usage(
            "run routerd-recover as root (it serves DHCP on port 67 and TFTP on 69)".into(),
        ));
    }
    let only_mac =
        match &args.mac {
            Some(text) => Some(dhcp::parse_mac(text).ok_or_else(|| {
                RecoverError::Usage(format!("--mac {text:?}: not a MAC address like 00:0d:b9:12:34:56"))
            })?),
            None => None,
        };
    println!("checking the image {} …", args.image.display());
    let image = check_image(&args.image)?;
    let backup = match &args.backup {
        Some(path) => {
            let artifact = check_backup(path)?;
            println!("the backup {} passed the checks a restore makes", path.display());
            Some(artifact)
        }
        None => None,
    };
    let manifest = Manifest { image, backup };
    let (address, prefix_len) = interface_address(&args.interface)?;

    let netboot = tempfile::Builder::new().prefix("routerd-recover-").tempdir().map_err(io("a work directory"))?;
    let binaries = routerd_image::builder::binaries_dir(&args.sources.binaries, &[routerd_image::netboot::INSTALLER])?;
    println!("building the network boot (kernel, recovery initramfs) …");
    let built = routerd_image::netboot::build(
        netboot.path(),
        &binaries,
        args.sources.cache.clone(),
        args.sources.kernel_deb.as_deref(),
        Some(&args.image),
    )?;
    match &built.not_the_images_kernel {
        None => println!("  the image's own kernel, {}", built.kernel_release),
        Some(why) => println!("  kernel {} (not the image's own: {why})", built.kernel_release),
    }
    let server_url = format!("http://{address}:{}", args.port);
    let session = session_token()?;
    let config_dir = netboot.path().join("pxelinux.cfg");
    std::fs::create_dir_all(&config_dir).map_err(io("creating pxelinux.cfg"))?;
    let config = routerd_image::netboot::pxelinux_cfg(&server_url, &session, args.disk.as_deref());
    std::fs::write(config_dir.join("default"), config).map_err(io("writing pxelinux.cfg/default"))?;

    let (reports_tx, reports) = mpsc::channel(64);
    let files = Arc::new(http::Files {
        session,
        manifest: serde_json::to_vec_pretty(&manifest).unwrap_or_default(),
        image: args.image.clone(),
        backup: args.backup.clone(),
    });
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(IpAddr::V4(address), args.port))
        .await
        .map_err(io(format!("listening on {address}:{} (HTTP)", args.port)))?;
    let socket = routerd::device_socket::udp_v4(&args.interface, 67).map_err(io("opening port 67 (DHCP)"))?;
    let tftp = tftp::start(netboot.path(), address).await?;
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(async move { http::serve(listener, files, reports_tx).await.map_err(io("serving HTTP")) });
    tasks.spawn(dhcp_loop(socket, dhcp::PxeDhcp::new(dhcp::Config { server: address, prefix_len, only_mac })));
    tasks.spawn(tftp);
    println!(
        "serving on {} ({address}): DHCP to {}, TFTP (kernel {}), HTTP {server_url}",
        args.interface,
        args.mac.as_deref().map_or("PXE clients only".to_string(), |m| format!("{m} only")),
        built.kernel_release
    );
    println!("now boot the router from the network (apu2: F10 at power-on, then the iPXE entry)");

    wait_for_installer(reports, tasks).await
}

/// Follows the installer's reports until it succeeds or fails, goes quiet for too long, or a server stops.
async fn wait_for_installer(
    mut reports: mpsc::Receiver<Report>,
    mut tasks: tokio::task::JoinSet<Result<(), RecoverError>>,
) -> Result<String, RecoverError> {
    let mut display = progress::Display::new();
    // Armed by the first report: an installer that goes quiet (a pulled cable, a dead router) ends the wait.
    let mut quiet_until: Option<tokio::time::Instant> = None;
    loop {
        let stalled = async {
            match quiet_until {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = stalled => return Err(RecoverError::Stalled(STALL.as_secs())),
            report = reports.recv() => {
                let Some(report) = report else { break };
                quiet_until = Some(tokio::time::Instant::now() + STALL);
                display.show(&report);
                match report.outcome {
                    Outcome::Working => {}
                    Outcome::Succeeded => return Ok(report.message),
                    Outcome::Failed => {
                        return Err(RecoverError::InstallFailed { step: report.step, message: report.message });
                    }
                }
            }
            ended = tasks.join_next() => {
                match ended {
                    Some(Ok(Err(error))) => return Err(error),
                    Some(Ok(Ok(()))) | None => break,
                    Some(Err(error)) => return Err(RecoverError::Io { what: "a server task".into(), source: std::io::Error::other(error.to_string()) }),
                }
            }
        }
    }
    Err(RecoverError::Io { what: "serving".into(), source: std::io::Error::other("a server stopped") })
}

async fn dhcp_loop(socket: tokio::net::UdpSocket, mut server: dhcp::PxeDhcp) -> Result<(), RecoverError> {
    let mut buffer = vec![0u8; 1500];
    loop {
        let (n, peer) = socket.recv_from(&mut buffer).await.map_err(io("receiving DHCP"))?;
        match server.handle(&buffer[..n]) {
            Ok(reply) => {
                let to = SocketAddr::new(IpAddr::V4(Ipv4Addr::BROADCAST), 68);
                if let Err(error) = socket.send_to(&reply, to).await {
                    eprintln!("DHCP: answering {peer}: {error}");
                } else {
                    eprintln!("DHCP: answered a network boot from {peer}");
                }
            }
            Err(dhcp::Ignored::NotPxe | dhcp::Ignored::OtherMac) => {
                eprintln!("DHCP: ignored a request that is not the router's network boot");
            }
            Err(why) => eprintln!("DHCP: ignored a packet: {why:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_without_routerds_disk_id_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("other.img");
        let mut sector = vec![0u8; 4096];
        sector[510] = 0x55;
        sector[511] = 0xaa;
        std::fs::write(&path, &sector).expect("write");
        let error = check_image(&path).expect_err("refused").to_string();
        assert!(error.contains("not a routerd disk image"), "{error}");
        std::fs::write(&path, b"tiny").expect("write");
        assert!(check_image(&path).expect_err("refused").to_string().contains("too short"));
        sector[440..444].copy_from_slice(&routerd_init::layout::DISK_ID.to_le_bytes());
        std::fs::write(&path, &sector).expect("write");
        let artifact = check_image(&path).expect("a routerd image");
        assert_eq!(artifact.size, 4096);
        assert_eq!(artifact.sha256.len(), 64);
    }

    #[test]
    fn a_backup_that_fails_the_restore_checks_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("backup.tar.gz");
        std::fs::write(&path, b"not gzip").expect("write");
        let error = check_backup(&path).expect_err("refused").to_string();
        assert!(error.contains("--backup") && error.contains("nothing was served"), "{error}");
        // A well-formed archive without the router's CA: routerd would make a new one and lock everyone out.
        let archive = routerd::backup::archive::build_raw(&[("routerd.json", tar::EntryType::Regular, b"{}")]);
        std::fs::write(&path, archive).expect("write");
        let error = check_backup(&path).expect_err("refused").to_string();
        assert!(error.contains("tls/"), "{error}");
    }
}
