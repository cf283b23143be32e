//! Recovering a routerd router over the network: `routerd-recover` on a workstation ([`serve`]) and
//! `routerd-install` in the recovery initramfs ([`install`]), which talk through [`protocol`].

pub mod install;
pub mod protocol;
pub mod serve;
