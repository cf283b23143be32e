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
/// The API's word for an uplink client's phase.
pub(crate) fn uplink_client_state(phase: crate::uplink::protocol::Phase) -> routerd_proto::v1::UplinkClientState {
    use crate::uplink::protocol::Phase;
    use routerd_proto::v1::UplinkClientState as State;
    match phase {
        Phase::Restored => State::Restored,
        Phase::Init => State::Init,
        Phase::Selecting => State::Selecting,
        Phase::Soliciting => State::Soliciting,
        Phase::Requesting => State::Requesting,
        Phase::InitReboot => State::InitReboot,
        Phase::Rebooting => State::Rebooting,
        Phase::Bound => State::Bound,
        Phase::Renewing => State::Renewing,
        Phase::Rebinding => State::Rebinding,
        Phase::Expired => State::ExpiredButKept,
        Phase::Released => State::Released,
    }
}

pub(crate) fn timestamp(time: std::time::SystemTime) -> prost_types::Timestamp {
    let since_epoch = time.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    prost_types::Timestamp { seconds: since_epoch.as_secs() as i64, nanos: since_epoch.subsec_nanos() as i32 }
}

pub(crate) fn timestamp_from_offset(time: time::OffsetDateTime) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: time.unix_timestamp(), nanos: time.nanosecond() as i32 }
}

#[cfg(test)]
mod tests {
    use crate::uplink::protocol::Phase;

    /// The API's enum and the word in `state` (and in the metrics' label) say the same thing for every phase.
    #[test]
    fn each_uplink_phase_has_the_proto_value_named_like_its_label() {
        for phase in Phase::ALL {
            let name = super::uplink_client_state(phase).as_str_name();
            let expected = format!("UPLINK_CLIENT_STATE_{}", phase.label().to_uppercase().replace('-', "_"));
            assert_eq!(name, expected);
        }
    }
}
