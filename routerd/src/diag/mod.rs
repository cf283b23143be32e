//! Diagnostics: a dependency tree of checks from the uplink's link to the internet and the LANs' services
//! ([`tree`] decides, [`plan`] chooses the checks, [`facts`] and [`probe`] do the I/O), plus ping and
//! traceroute from the router ([`ping`], over [`icmp`]).

pub(crate) mod facts;
pub(crate) mod icmp;
pub(crate) mod ping;
pub(crate) mod plan;
pub(crate) mod probe;
pub(crate) mod service;
pub(crate) mod tree;

pub(crate) use service::Diagnostics;
pub(crate) use tree::{Decided, Outcome, Report};
