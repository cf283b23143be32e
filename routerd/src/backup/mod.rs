//! Backups of `--perm` as tar.gz and their restore: the archive built and checked here ([`archive`], no
//! daemon state involved), swapped in crash-safely ([`restore`]).

pub mod archive;
pub mod restore;

pub use archive::{Archive, BackupError, Entry, Limits};
