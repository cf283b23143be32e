//! The DHCPv4 lease on disk, in router7's files: `dhcp4/wire/ack` (the raw ACK, for INIT-REBOOT after a
//! restart) and `dhcp4/wire/lease.json` (readable, router7's fields plus routerd's).

use std::path::{Path, PathBuf};

use super::{Lease, LeaseFile, LeaseTimes, client::parse_ack};
use crate::{
    store::{self, Mode, StoreError},
    uplink::lease_times::{FileTimes, rfc3339, wall_clock},
};

pub(crate) fn wire_dir(perm: &Path) -> PathBuf {
    perm.join("dhcp4").join("wire")
}

/// Writes both files, each atomically: the ACK first, so the JSON never describes an ACK that is not there.
pub(crate) fn save(perm: &Path, ack: &[u8], lease: &Lease, times: LeaseTimes) -> Result<(), StoreError> {
    let dir = wire_dir(perm);
    store::write_atomic(&dir.join("ack"), ack, Mode::Public)?;
    let file = LeaseFile {
        valid_until: rfc3339(wall_clock(times.renew_at)),
        client_ip: lease.address.to_string(),
        subnet_mask: lease.subnet_mask().to_string(),
        router: lease.gateway.map(|g| g.to_string()).unwrap_or_default(),
        dns: lease.dns.iter().map(ToString::to_string).collect(),
        times: FileTimes::new(lease.server_id.map(|s| s.to_string()).unwrap_or_default(), times),
        lease_seconds: lease.lease_time.as_secs(),
    };
    store::write_json(&dir.join("lease.json"), &file, Mode::Public)
}

/// Forgets the saved lease (after a release: a restart must not bring the released address back).
pub(crate) fn remove(perm: &Path) -> std::io::Result<()> {
    for name in ["ack", "lease.json"] {
        match std::fs::remove_file(wire_dir(perm).join(name)) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
            _ => {}
        }
    }
    Ok(())
}

/// The saved lease, if there is a usable one. A damaged ACK is reported and treated as no lease: the client
/// then simply asks the ISP again.
pub(crate) fn load(perm: &Path) -> Result<Option<Lease>, String> {
    let path = wire_dir(perm).join("ack");
    let Some(bytes) = store::read_optional(&path).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    parse_ack(&bytes).map(Some).map_err(|reason| format!("{}: not a usable DHCPACK ({reason})", path.display()))
}
