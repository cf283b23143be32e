//! Packet capture: the pcapng format ([`pcapng`]) and the ring of recent packets with live readers ([`ring`]);
//! capturing on the interfaces and `CaptureService` come next.

#[allow(unsafe_code)] // Still has calls of its own into the C library; they are to move into `sys`.
pub mod bpf;
pub mod pcapng;
pub mod ring;
pub mod service;
