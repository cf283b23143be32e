//! The installer: PID 1 of the recovery initramfs. It finds the router's disk, checks the backup, writes the
//! image and reads it back, restores `/perm` from the backup, reports each step to routerd-recover, and restarts
//! into the installed system.

pub mod boot_params;
pub mod disk;
pub mod error;
pub mod fetch;
pub mod perm;
pub mod system;

use std::{
    io::Read,
    path::Path,
    time::{Duration, Instant},
};

use error::InstallError;
use fetch::Server;

use crate::protocol::{self, Report};

/// How often progress is reported during a long step.
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// Runs the install; on success the machine restarts. On failure, says why (to routerd-recover when it can be
/// reached, and on the console), then restarts after `FAILURE_PAUSE`: a disk left unbootable falls through to
/// the network boot, so running routerd-recover again simply starts over.
pub fn main() -> ! {
    for failure in routerd_init::sys::mount_kernel_file_systems() {
        println!("recover: {failure}");
    }
    println!("recover: routerd recovery installer {}", env!("CARGO_PKG_VERSION"));
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    match routerd_init::modules::load_listed(Path::new("/etc/modules.load")) {
        Ok(outcome) => outcome.failed.iter().for_each(|failed| println!("recover: module not loaded: {failed}")),
        Err(why) => println!("recover: {why}: no modules loaded"),
    }
    let (server, result) = match boot_params::parse(&cmdline) {
        Ok(params) => {
            let server = Server::new(&params.server, &params.session);
            let result = bring_up_network(&params).and_then(|()| install(&server, params.disk.as_deref()));
            (Some(server), result)
        }
        Err(error) => (None, Err(error.into())),
    };
    match result {
        Ok(message) => {
            if let Some(server) = &server {
                server.report(&Report::succeeded(&message));
            }
            println!("recover: {message}; restarting");
        }
        Err(error) => {
            let report = Report::failed(error.step(), error.to_string());
            match &server {
                Some(server) => server.report(&report),
                None => println!("recover: {error}"),
            }
            println!("recover: restarting in {} s", FAILURE_PAUSE.as_secs());
            std::thread::sleep(FAILURE_PAUSE);
        }
    }
    routerd_init::sys::sync();
    let error = routerd_init::sys::reboot(libc::RB_AUTOBOOT);
    println!("recover: restarting failed: {error}");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

const FAILURE_PAUSE: Duration = Duration::from_secs(30);

fn bring_up_network(params: &boot_params::BootParams) -> Result<(), InstallError> {
    let end = Instant::now() + Duration::from_secs(30);
    let interface = loop {
        if let Some(interface) = system::interface_with_mac(&params.mac) {
            break interface;
        }
        if Instant::now() >= end {
            return Err(InstallError::Network(format!(
                "no network interface with {} (the NIC that booted)",
                params.mac
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    system::configure_ipv4(&interface, params.address, params.netmask)
        .map_err(|e| InstallError::Network(format!("configuring {interface}: {e}")))?;
    println!("recover: {interface} is {} (from the network boot); server {}", params.address, params.server);
    Ok(())
}

/// A progress reporter for one step: at most one report per `REPORT_EVERY`.
fn progress<'a>(server: &'a Server, step: &'a str, message: &'a str, total: u64) -> impl FnMut(u64) + 'a {
    let mut last = Instant::now() - REPORT_EVERY;
    move |done| {
        if last.elapsed() >= REPORT_EVERY || done == total {
            last = Instant::now();
            server.report(&Report::working(step, message, done, total));
        }
    }
}

fn install(server: &Server, named_disk: Option<&str>) -> Result<String, InstallError> {
    // The link comes up some time after the interface does: the first request is retried for a while.
    let manifest = retry_for(Duration::from_secs(60), || server.manifest())?;
    let disks = disk::wait_for_candidates();
    let target = disk::choose(&disks, named_disk, manifest.image.size)?;
    server.report(&Report::working("disk", format!("writing to {} ({} bytes)", target.name, target.size), 0, 0));

    let entries = match &manifest.backup {
        Some(artifact) => {
            if artifact.size > protocol::MAX_BACKUP {
                return Err(InstallError::Refused(format!(
                    "the backup is {} bytes, more than a backup has",
                    artifact.size
                )));
            }
            let mut bytes = Vec::new();
            server
                .download(protocol::BACKUP_PATH, artifact)?
                .read_to_end(&mut bytes)
                .map_err(|e| InstallError::Network(format!("receiving the backup: {e}")))?;
            let hash = routerd_proto::hex(ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref());
            if hash != artifact.sha256 {
                return Err(InstallError::Network("the backup arrived damaged (its SHA-256 differs)".into()));
            }
            let entries = perm::check(&bytes, Path::new("/tmp/backup-check"))
                .map_err(|e| InstallError::Refused(format!("the backup: {e}")))?;
            server.report(&Report::working(
                "backup",
                format!("the backup passed its checks ({} files)", entries.len()),
                0,
                0,
            ));
            Some(entries)
        }
        None => None,
    };

    let size = manifest.image.size;
    let device = target.device();
    let mut body = server.download(protocol::IMAGE_PATH, &manifest.image)?;
    let received = disk::write(&device, &mut body, size, &mut progress(server, "image", "writing the image", size))?;
    if received != manifest.image.sha256 {
        return Err(InstallError::Disk("the image arrived damaged (its SHA-256 differs)".into()));
    }
    let written = disk::read_back(&device, size, &mut progress(server, "verify", "reading the image back", size))?;
    if written != manifest.image.sha256 {
        return Err(InstallError::Disk("the disk does not read back what was written (SHA-256 differs)".into()));
    }
    let mut message = format!("the image is on {} and reads back intact", target.name);
    if let Some(entries) = entries {
        let partition = disk::partition(&target, routerd_init::layout::PERM_PARTITION);
        wait_for(&partition)?;
        let count = perm::restore(&partition, &entries)?;
        server.report(&Report::working("perm", format!("/perm restored from the backup ({count} files)"), 0, 0));
        message.push_str(&format!("; /perm restored from the backup ({count} files)"));
    }
    Ok(message)
}

fn wait_for(partition: &Path) -> Result<(), InstallError> {
    let end = Instant::now() + Duration::from_secs(20);
    while !partition.exists() {
        if Instant::now() >= end {
            return Err(InstallError::Perm(format!("{} did not appear", partition.display())));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// Tries `attempt` until it succeeds or `within` passes (the link may still be coming up).
fn retry_for<T>(within: Duration, mut attempt: impl FnMut() -> Result<T, InstallError>) -> Result<T, InstallError> {
    let end = Instant::now() + within;
    loop {
        match attempt() {
            Ok(value) => return Ok(value),
            Err(error) if Instant::now() >= end => return Err(error),
            Err(_) => std::thread::sleep(Duration::from_secs(2)),
        }
    }
}
