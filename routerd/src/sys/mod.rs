//! Calls into the C library and the kernel that neither std, tokio nor socket2 offer, each behind a safe function.

pub mod malloc;
