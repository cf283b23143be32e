//! routerd: a home internet router daemon, managed through typed gRPC over mutual TLS.

#![deny(unsafe_code, clippy::undocumented_unsafe_blocks)]

pub mod api;
pub mod backup;
pub mod blocking;
pub mod bpf;
pub mod capture;
pub mod clock;
pub mod command_channel;
pub mod config;
pub mod counters;
pub mod daemon;
pub mod device_socket;
pub mod dhcp4_wire;
pub mod diag;
pub mod firewall;
#[doc(hidden)]
pub mod fuzzing;
pub mod lan;
pub mod limits;
pub mod metrics;
pub mod netconfig;
pub mod own_thread;
pub mod packet_socket;
pub mod pki;
pub mod restart;
pub mod store;
pub mod supervisor;
#[allow(unsafe_code)] // The one place for calls into the C library, each behind a safe function.
pub mod sys;
pub mod system;
pub mod timesync;
pub mod update;
pub mod uplink;

/// routerd's version, as reported by `SystemService.GetStatus`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
