//! The gRPC API: one file per service, mapping between protobuf and the domain. No business logic here.

pub mod authorize;
mod backup;
mod capture;
mod diagnostics;
mod lease;
mod pki;
mod port_forward;
mod server;
pub mod sessions;
mod system;
pub mod tls;
pub mod update;
pub mod update_system;

pub use lease::LeaseView;
pub use server::{ApiContext, ApiError, serve};
pub use system::SystemView;

/// Converts a `SystemTime` to a protobuf timestamp.
pub(crate) fn timestamp(time: std::time::SystemTime) -> prost_types::Timestamp {
    let since_epoch = time.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    prost_types::Timestamp { seconds: since_epoch.as_secs() as i64, nanos: since_epoch.subsec_nanos() as i32 }
}

pub(crate) fn timestamp_from_offset(time: time::OffsetDateTime) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: time.unix_timestamp(), nanos: time.nanosecond() as i32 }
}
