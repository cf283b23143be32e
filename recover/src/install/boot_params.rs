//! What the network boot tells the installer on its kernel command line: pxelinux's `IPAPPEND 3` adds
//! `ip=CLIENT:SERVER:GATEWAY:NETMASK` (the address DHCP gave) and `BOOTIF=01-MAC` (the NIC it booted from);
//! routerd-recover's configuration adds the server's URL and, when the user named one, the disk.

use std::net::Ipv4Addr;

use crate::protocol::{CMDLINE_DISK, CMDLINE_SERVER, CMDLINE_SESSION};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootParams {
    pub address: Ipv4Addr,
    pub netmask: Ipv4Addr,
    /// The NIC that booted, lower-case `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// `http://ADDRESS:PORT`
    pub server: String,
    pub disk: Option<String>,
    /// routerd-recover's run (see [`CMDLINE_SESSION`]).
    pub session: String,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("the kernel command line has no {0} (boot this initramfs through routerd-recover's pxelinux)")]
    Missing(&'static str),
    #[error("the kernel command line's {key} is malformed: {value:?}")]
    Malformed { key: &'static str, value: String },
}

fn value<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline.split_whitespace().find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
}

pub fn parse(cmdline: &str) -> Result<BootParams, ParamError> {
    let ip = value(cmdline, "ip").ok_or(ParamError::Missing("ip= (pxelinux IPAPPEND 1)"))?;
    let malformed_ip = || ParamError::Malformed { key: "ip", value: ip.to_string() };
    let fields: Vec<&str> = ip.split(':').collect();
    if fields.len() < 4 {
        return Err(malformed_ip());
    }
    let address: Ipv4Addr = fields[0].parse().map_err(|_| malformed_ip())?;
    let netmask: Ipv4Addr = fields[3].parse().map_err(|_| malformed_ip())?;
    let bootif = value(cmdline, "BOOTIF").ok_or(ParamError::Missing("BOOTIF= (pxelinux IPAPPEND 2)"))?;
    let mac = parse_bootif(bootif).ok_or_else(|| ParamError::Malformed { key: "BOOTIF", value: bootif.into() })?;
    let server = value(cmdline, CMDLINE_SERVER).ok_or(ParamError::Missing(CMDLINE_SERVER))?;
    if !server.starts_with("http://") {
        return Err(ParamError::Malformed { key: CMDLINE_SERVER, value: server.into() });
    }
    let disk = value(cmdline, CMDLINE_DISK).map(str::to_string);
    let session = value(cmdline, CMDLINE_SESSION).ok_or(ParamError::Missing(CMDLINE_SESSION))?;
    Ok(BootParams { address, netmask, mac, server: server.to_string(), disk, session: session.to_string() })
}

/// `01-52-54-00-12-34-56` (hardware type 1, Ethernet) as `52:54:00:12:34:56`.
fn parse_bootif(text: &str) -> Option<String> {
    let bytes: Vec<&str> = text.split('-').collect();
    if bytes.len() != 7 || bytes[0] != "01" {
        return None;
    }
    if !bytes[1..].iter().all(|b| b.len() == 2 && b.bytes().all(|c| c.is_ascii_hexdigit())) {
        return None;
    }
    Some(bytes[1..].join(":").to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PXELINUX: &str = "console=ttyS0,115200 routerd.recover=http://192.0.2.10:8067 routerd.session=c0ffee \
                            initrd=initrd \
                            ip=192.0.2.150:192.0.2.10:0.0.0.0:255.255.255.0 BOOTIF=01-02-00-00-00-01-0A";

    #[test]
    fn pxelinux_parameters_are_read() {
        let params = parse(PXELINUX).expect("valid");
        assert_eq!(params.address, Ipv4Addr::new(192, 0, 2, 150));
        assert_eq!(params.netmask, Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(params.mac, "02:00:00:00:01:0a");
        assert_eq!(params.server, "http://192.0.2.10:8067");
        assert_eq!(params.disk, None);
        assert_eq!(params.session, "c0ffee");
        assert_eq!(parse(&format!("{PXELINUX} routerd.disk=sdb")).expect("valid").disk.as_deref(), Some("sdb"));
    }

    #[test]
    fn missing_and_malformed_parameters_are_named() {
        assert!(matches!(parse("console=ttyS0"), Err(ParamError::Missing(key)) if key.starts_with("ip=")));
        let bad_ip = PXELINUX.replace("192.0.2.150:", "300.0.2.150:");
        assert!(matches!(parse(&bad_ip), Err(ParamError::Malformed { key: "ip", .. })));
        let bad_mac = PXELINUX.replace("BOOTIF=01-", "BOOTIF=06-");
        assert!(matches!(parse(&bad_mac), Err(ParamError::Malformed { key: "BOOTIF", .. })));
        let no_server = PXELINUX.replace("routerd.recover=http://192.0.2.10:8067", "");
        assert_eq!(parse(&no_server), Err(ParamError::Missing(CMDLINE_SERVER)));
        let no_session = PXELINUX.replace("routerd.session=c0ffee", "");
        assert_eq!(parse(&no_session), Err(ParamError::Missing(CMDLINE_SESSION)));
        let not_http = PXELINUX.replace("http://", "ftp://");
        assert!(matches!(parse(&not_http), Err(ParamError::Malformed { key: CMDLINE_SERVER, .. })));
    }
}
