//! NAT, the firewall and port forwards: port forwards from router7's portforwardings.json ([`forwards`]) and
//! the ruleset built from the configuration ([`ruleset`]).

pub mod apply;
pub mod forwards;
pub mod ruleset;
pub mod service;
