//! Router advertisements on every LAN that has a /64 of the delegated prefix: the packets ([`advert`]) and the
//! service that sends them, unsolicited and on request ([`service`]).

pub(crate) mod advert;
pub(crate) mod service;
