//! Calls into the C library and the kernel that neither std, tokio nor socket2 offer, each behind a safe function
//! (as quinn-udp is for quinn). The rest of routerd has no `unsafe` of its own: lib.rs denies it everywhere else,
//! and every unsafe block here says why it is sound (`clippy::undocumented_unsafe_blocks`).

pub mod clock;
pub mod files;
pub mod icmpv6;
pub mod interfaces;
pub mod malloc;
pub mod nftables;
pub mod packet;
pub mod process;
pub mod socket;
