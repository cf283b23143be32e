//! NAT, the firewall and port forwards: the ruleset built from the configuration ([`ruleset`]), loaded as one
//! transaction ([`apply`]), kept in step with the port forwards ([`service`]), and IP forwarding, which only a
//! loaded ruleset turns on ([`forwarding`]).

pub mod apply;
pub mod forwarding;
pub mod ruleset;
pub mod service;
