//! Calls into the C library and the kernel that neither std, tokio nor socket2 offer, each behind a safe function.
//! The rest of routerd has no `unsafe` of its own (`#![deny(unsafe_code)]` in lib.rs), except the modules lib.rs
//! still lists, which are to move here.

pub mod clock;
pub mod files;
pub mod icmpv6;
pub mod interfaces;
pub mod malloc;
pub mod packet;
pub mod process;
pub mod socket;
