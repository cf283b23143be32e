//! The appliance's init (PID 1) and what it shares with the image builder: the disk layout, the kernel command
//! line it reads, and how kernel modules and their dependencies are found.

pub mod block;
pub mod cmdline;
pub mod handoff;
pub mod layout;
pub mod modules;
