//! Prometheus metrics: the text exposition and the HTTP endpoint on port 8066 (LAN and loopback addresses only).
//!
//! The services' own counters are in [`crate::counters`]; everything else (leases, uplink state, capture ring,
//! firewall counters, diagnostics, memory) is read at scrape time from the views the API uses too.

pub(crate) mod collect;
pub(crate) mod http;
pub(crate) mod text;
