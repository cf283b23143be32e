//! The appliance's init (PID 1) and what it shares with the image builder: the disk layout, the kernel command
//! line it reads, and how kernel modules and their dependencies are found.

pub mod cmdline;
pub mod layout;
pub mod modules;
