//! Packet capture: the pcapng format ([`pcapng`]) and the ring of recent packets with live readers ([`ring`]);
//! capturing on the interfaces and `CaptureService` come next.

pub(crate) mod pcapng;
pub(crate) mod ring;
pub(crate) mod service;
