//! The virtual home network routerd is tested in: an ISP, the router, and LAN devices, each in its own network
//! namespace, with real third-party software on every side.
//!
//! ```no_run
//! use integration::{Lab, LabOptions};
//!
//! let lab = Lab::start(LabOptions::default()).expect("lab");
//! let device = lab.lan(1);
//! lab.check(device.set_static_ipv4(), "addressing lan1");
//! let status = lab.check(device.rtrctl(&["status"]), "running rtrctl");
//! // Dropping the lab (also on a panic) stops every process and removes every namespace.
//! ```

pub mod addresses;
pub mod appliance;
pub mod clients;
pub mod command;
pub mod demo;
pub mod error;
pub mod flood;
pub mod isp;
pub mod lab;
pub mod lan;
pub mod metrics;
pub mod netns;
pub mod programs;
pub mod reference;
pub mod router;
pub mod sockets;
pub mod tracker;
pub mod tshark;
pub mod wait;

pub use clients::{ClientEvent, DhcpClient, DhcpClientKind, RouterAdvert};
pub use error::LabError;
pub use isp::{Dhcpv6Server, IspOptions, Timers};
pub use lab::{Lab, LabOptions};
pub use lan::LanDevice;
