//! The `router.v1` gRPC API of routerd: messages, clients and servers generated from `router/v1/*.proto`.

#![forbid(unsafe_code)]

/// Package `router.v1`.
pub mod v1 {
    #![allow(clippy::all, clippy::pedantic)]
    tonic::include_proto!("router.v1");
}

/// Encoded `FileDescriptorSet` of the API, served through gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/router_v1_descriptor.bin"));

pub mod identity;
pub mod pairing_code;

/// The TCP port routerd serves gRPC on by default (registered for gRPC network management).
pub const DEFAULT_PORT: u16 = 9339;

/// The seconds a new version may be given to report healthy after an update, wherever a window is set
/// (`ActivateUpdateRequest.confirm_window`, routerd.json `update_confirm_window_seconds`, `rtrctl update
/// --confirm-window`): under 10 s a new version has no time to start and check itself, so every update would roll
/// back.
pub const CONFIRM_WINDOW_SECONDS: std::ops::RangeInclusive<u64> = 10..=3600;

/// Lower-case hex, as routerd's files and messages write hashes and DUIDs.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 in lower-case hex: how backups and update artifacts are named and checked, on both ends.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

/// SHA-256 of a DER certificate: what pairing codes pin.
pub fn certificate_fingerprint(der: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}
