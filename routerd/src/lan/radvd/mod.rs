//! Router advertisements on every LAN that has a /64 of the delegated prefix: the packets ([`advert`]), what to
//! send when, without I/O ([`schedule`]), and the service that sends it ([`service`]).

pub(crate) mod advert;
pub(crate) mod schedule;
pub(crate) mod service;
