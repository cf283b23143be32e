//! NAT, the firewall and port forwards: the ruleset built from the configuration ([`ruleset`]), loaded as one
//! transaction ([`apply`]), kept in step with the port forwards ([`service`]), and IP forwarding, which only a
//! loaded ruleset turns on ([`forwarding`]).

pub(crate) mod apply;
pub(crate) mod forwarding;
pub(crate) mod ruleset;
pub(crate) mod service;
