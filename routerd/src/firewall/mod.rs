//! NAT, the firewall and port forwards: port forwards from router7's portforwardings.json ([`forwards`]) and
//! the ruleset built from the configuration ([`ruleset`]).

pub mod apply;
pub mod forwards;
#[allow(unsafe_code)] // Still has calls of its own into the C library; they are to move into `sys`.
mod libnftables;
pub mod ruleset;
pub mod service;
