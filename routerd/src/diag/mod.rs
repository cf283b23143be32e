//! Diagnostics: a dependency tree of checks from the uplink's link to the internet and the LANs' services
//! ([`tree`] decides, [`plan`] chooses the checks, [`facts`] and [`probe`] do the I/O), plus ping and
//! traceroute from the router ([`ping`], over [`icmp`]).

pub mod facts;
pub mod icmp;
pub mod ping;
pub mod plan;
pub mod probe;
pub mod service;
pub mod tree;

pub use service::Diagnostics;
pub use tree::{Decided, Outcome, Report};
