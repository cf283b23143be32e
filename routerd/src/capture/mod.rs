//! Packet capture: the pcapng format ([`pcapng`]) and the ring of recent packets with live readers ([`ring`]);
//! capturing on the interfaces and `CaptureService` come next.

pub mod pcapng;
pub mod ring;
pub mod service;
