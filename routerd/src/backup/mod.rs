//! Backups of `--perm` as tar.gz and their restore: the archive built and checked here ([`archive`], no
//! daemon state involved), swapped in crash-safely ([`restore`]).

pub mod archive;
pub mod check;
pub mod restore;
pub mod trial;

pub use archive::{Archive, BackupError, Entry, Limits};
