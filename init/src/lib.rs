//! The appliance's init (PID 1) and what it shares with the image builder and the recovery installer: the disk
//! layout, the kernel command line it reads, how kernel modules and their dependencies are found and loaded,
//! and the system calls std has no wrapper for.

pub mod block;
pub mod cmdline;
pub mod handoff;
pub mod layout;
pub mod modules;
pub mod sys;
