//! The server against DISCOVERs and REQUESTs sent by real clients (captured on the lab's LAN with tshark, the
//! clients run as `udhcpc -x hostname:phone` and `dhclient` with `send host-name "laptop"`): what those programs
//! put in their packets (option order, parameter lists, padding) is what the server has to take.

use std::{
    net::Ipv4Addr,
    time::{Duration, SystemTime},
};

use dhcproto::{
    Decodable,
    v4::{DhcpOption, Message, MessageType, OptionCode},
};

use super::{PoolConfig, Server};
use crate::uplink::pcap;

const ROUTER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

/// The client's messages of a capture (to port 67), in order.
fn client_messages(capture: &[u8]) -> Vec<Vec<u8>> {
    let messages: Vec<Vec<u8>> = pcap::udp_datagrams(capture)
        .into_iter()
        .filter(|d| (d.source_port, d.destination_port) == (68, 67))
        .map(|d| d.payload)
        .collect();
    assert_eq!(messages.len(), 2, "DISCOVER and REQUEST");
    messages
}

fn message_type(message: &Message) -> Option<MessageType> {
    message.opts().msg_type()
}

fn requested(message: &Message) -> Option<Ipv4Addr> {
    match message.opts().get(OptionCode::RequestedIpAddress) {
        Some(DhcpOption::RequestedIpAddress(addr)) => Some(*addr),
        _ => None,
    }
}

/// Replays the capture's DISCOVER and REQUEST against a fresh server and checks the lease that results.
fn replay(capture: &[u8], hostname: &str) {
    let [discover, request] = <[Vec<u8>; 2]>::try_from(client_messages(capture)).expect("two messages");
    let asked = requested(&Message::from_bytes(&request).expect("the captured REQUEST decodes"))
        .expect("the REQUEST names the offered address");
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let pool = PoolConfig::whole_subnet("lan0", ROUTER, 24).expect("pool");
    let mut server = Server::new(pool, []);

    let offer = server.handle(now, &discover).expect("the captured DISCOVER is taken");
    let offer = Message::from_bytes(&offer.reply.expect("an OFFER").payload).expect("decodes");
    assert_eq!(message_type(&offer), Some(MessageType::Offer));
    assert!(offer.yiaddr().octets()[..3] == ROUTER.octets()[..3] && offer.yiaddr() != ROUTER, "{offer:?}");

    // The captured REQUEST asks for what routerd offered then; if this server offered another address, the
    // client's REQUEST for a free address of the pool is still granted (the offer is only a proposal).
    let ack = server.handle(now, &request).expect("the captured REQUEST is taken");
    assert!(ack.changed, "a lease was recorded");
    let ack = Message::from_bytes(&ack.reply.expect("an ACK").payload).expect("decodes");
    assert_eq!(message_type(&ack), Some(MessageType::Ack), "{ack:?}");
    assert_eq!(ack.yiaddr(), asked);
    let mac: [u8; 6] = ack.chaddr()[..6].try_into().expect("a MAC");
    let lease = server.leases().by_mac(&mac).expect("the server's lease");
    assert_eq!((lease.addr, lease.hostname.as_deref()), (asked, Some(hostname)));
}

#[test]
fn udhcpc_discover_and_request_get_a_lease_with_its_hostname() {
    replay(include_bytes!("../../../testdata/clients/udhcpc.pcap"), "phone");
}

#[test]
fn dhclient_discover_and_request_get_a_lease_with_its_hostname() {
    replay(include_bytes!("../../../testdata/clients/dhclient.pcap"), "laptop");
}
