//! routerd: a home internet router daemon, managed through typed gRPC over mutual TLS.

#![deny(unsafe_code, clippy::undocumented_unsafe_blocks)]

pub mod api;
pub mod backup;
pub(crate) mod blocking;
pub(crate) mod bpf;
pub(crate) mod capture;
pub(crate) mod clock;
pub(crate) mod command_channel;
pub mod config;
pub(crate) mod counters;
pub mod daemon;
pub mod device_socket;
pub mod dhcp4_wire;
pub(crate) mod diag;
pub(crate) mod firewall;
#[doc(hidden)]
pub mod fuzzing;
pub(crate) mod lan;
pub mod limits;
pub(crate) mod metrics;
pub(crate) mod netconfig;
pub(crate) mod own_thread;
pub(crate) mod packet_socket;
pub mod pki;
pub(crate) mod restart;
pub mod store;
pub(crate) mod supervisor;
#[allow(unsafe_code)] // The one place for calls into the C library, each behind a safe function.
pub mod sys;
pub mod system;
pub mod timesync;
pub mod update;
pub(crate) mod uplink;

/// routerd's version, as reported by `SystemService.GetStatus`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
