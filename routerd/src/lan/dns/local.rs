//! Names the router answers itself: `HOST.lan` and `HOST` from DHCP leases, the router's own name, PTR records
//! for them, `localhost`, and NXDOMAIN for private reverse zones (RFC 6303); everything else is forwarded.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    str::FromStr,
    time::SystemTime,
};

use hickory_proto::{
    op::{Message, MessageType, OpCode, Query, ResponseCode},
    rr::{
        DNSClass, Name, RData, Record, RecordType,
        rdata::{A, AAAA, PTR},
    },
};

use super::policy;
use crate::lan::dhcp4d::Lease;

/// TTL of local answers: short, since leases come and go.
const LOCAL_TTL: u32 = 60;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct LocalData {
    /// Host label → addresses.
    names: HashMap<String, Vec<IpAddr>>,
    reverse: HashMap<IpAddr, String>,
    domain: String,
}

/// Names no DHCP client may claim: they steer other devices (`wpad` and `isatap` make browsers and Windows send
/// their traffic to whoever answers) or belong to the router and the host itself.
/// The LAN's own domain: `HOST.lan`.
pub(crate) const LOCAL_DOMAIN: &str = "lan";

/// Whether [`decide`] may answer `name` (lower case, without the trailing dot) itself instead of forwarding it: a
/// single label, a name within `domain`, `.arpa` (local and private reverse zones; public ones are forwarded
/// after a look) and `localhost`. A name for which this is false is always forwarded, so the cache's fast path,
/// which asks this before answering from the cache, never answers what `decide` would answer itself.
pub(crate) fn may_answer_locally(name: &[u8], domain: &str) -> bool {
    let within = |zone: &[u8]| {
        name == zone || (name.len() > zone.len() && name.ends_with(zone) && name[name.len() - zone.len() - 1] == b'.')
    };
    !name.contains(&b'.') || within(domain.as_bytes()) || within(b"arpa") || within(b"localhost")
}

const RESERVED_NAMES: &[&str] = &["localhost", "wpad", "isatap", "lan", "local", "localdomain", "broadcasthost"];

impl LocalData {
    /// From the active and static leases and the router's own name and LAN addresses. The router's name and
    /// [`RESERVED_NAMES`] win: a client that sends one as its hostname does not get it (the owner still can, with
    /// a static lease's name).
    pub(crate) fn build<'a>(
        leases: impl Iterator<Item = &'a Lease>,
        router_name: &str,
        router_addrs: &[IpAddr],
        now: SystemTime,
    ) -> LocalData {
        let domain = LOCAL_DOMAIN.to_string();
        let mut data = LocalData { names: HashMap::new(), reverse: HashMap::new(), domain };
        let router = router_name.to_ascii_lowercase();
        if !router.is_empty() {
            data.names.insert(router.clone(), router_addrs.to_vec());
            for addr in router_addrs {
                data.reverse.insert(*addr, router.clone());
            }
        }
        for lease in leases.filter(|l| l.is_static() || !l.expired(now)) {
            let Some(name) = lease.name() else { continue };
            let claimed_by_client = lease.hostname_override.is_none() && !lease.is_static();
            if name == router || (claimed_by_client && RESERVED_NAMES.contains(&name)) {
                continue;
            }
            data.names.entry(name.to_string()).or_default().push(IpAddr::V4(lease.addr));
            data.reverse.insert(IpAddr::V4(lease.addr), name.to_string());
        }
        data
    }

    /// The host label of `name` if it is local (`host.lan` or a single label).
    fn host_label<'a>(&self, name: &'a str) -> Option<&'a str> {
        if let Some(host) = name.strip_suffix(&format!(".{}", self.domain)) {
            return (!host.contains('.')).then_some(host);
        }
        (!name.contains('.')).then_some(name)
    }
}

/// What to do with a query.
#[derive(Debug)]
pub(crate) enum Decision {
    Answer(Message),
    /// Ask an upstream server (`name` is lower case without the trailing dot).
    Forward {
        name: String,
        record_type: RecordType,
    },
}

fn response(request: &Message, code: ResponseCode, authoritative: bool) -> Message {
    let mut response = Message::response(request.metadata.id, OpCode::Query);
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    response.metadata.authoritative = authoritative;
    response.metadata.response_code = code;
    response.add_queries(request.queries.iter().cloned());
    response
}

/// Decides how to answer `request`.
pub(crate) fn decide(request: &Message, local: &LocalData) -> Decision {
    if request.metadata.message_type != MessageType::Query || request.metadata.op_code != OpCode::Query {
        return Decision::Answer(response(request, ResponseCode::NotImp, false));
    }
    let [query] = request.queries.as_slice() else {
        return Decision::Answer(response(request, ResponseCode::FormErr, false));
    };
    if query.query_class() != DNSClass::IN {
        return Decision::Answer(response(request, ResponseCode::NotImp, false));
    }
    let name = query.name().to_ascii().trim_end_matches('.').to_ascii_lowercase();
    let record_type = query.query_type();

    if name == "localhost" || name.ends_with(".localhost") {
        let addrs = [IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST)];
        return Decision::Answer(address_answer(request, query, &addrs));
    }
    if record_type == RecordType::PTR
        && let Some(addr) = policy::reverse_address(&name)
        && let Some(host) = local.reverse.get(&addr)
    {
        let mut answer = response(request, ResponseCode::NoError, true);
        if let Ok(target) = Name::from_str(&format!("{host}.{}.", local.domain)) {
            answer.add_answer(Record::from_rdata(query.name().clone(), LOCAL_TTL, RData::PTR(PTR(target))));
        }
        return Decision::Answer(answer);
    }
    if policy::is_private_reverse_zone(&name) {
        return Decision::Answer(response(request, ResponseCode::NXDomain, true));
    }
    if let Some(host) = local.host_label(&name) {
        return Decision::Answer(match local.names.get(host) {
            Some(addrs) => address_answer(request, query, addrs),
            // Never forwarded: a single label or .lan name that nobody has does not exist.
            None => response(request, ResponseCode::NXDomain, true),
        });
    }
    if policy::is_within(&name, &local.domain) {
        return Decision::Answer(response(request, ResponseCode::NXDomain, true));
    }
    Decision::Forward { name, record_type }
}

/// A and AAAA records of `addrs` that match the query type (NOERROR without records is "no data").
fn address_answer(request: &Message, query: &Query, addrs: &[IpAddr]) -> Message {
    let mut answer = response(request, ResponseCode::NoError, true);
    for addr in addrs {
        let rdata = match (addr, query.query_type()) {
            (IpAddr::V4(v4), RecordType::A | RecordType::ANY) => RData::A(A(*v4)),
            (IpAddr::V6(v6), RecordType::AAAA | RecordType::ANY) => RData::AAAA(AAAA(*v6)),
            _ => continue,
        };
        answer.add_answer(Record::from_rdata(query.name().clone(), LOCAL_TTL, rdata));
    }
    answer
}

/// Drops A/AAAA answers that point into private space for names not on the allowlist (DNS rebinding
/// protection); returns how many were dropped.
pub(crate) fn drop_rebinding(
    response: &mut Message,
    name: &str,
    allowlist: &[String],
    inside: &[(IpAddr, u8)],
) -> usize {
    if allowlist.iter().any(|allowed| policy::is_within(name, allowed)) {
        return 0;
    }
    // Private space, and the house's own public addresses: the delegated prefix (every LAN's /64 is in it) and
    // the uplink's addresses. A public name pointing there is a rebinding attack as much as one pointing at
    // 192.168.0.1.
    let blocked = |addr: IpAddr| policy::is_private(addr) || inside.iter().any(|(net, len)| within(addr, *net, *len));
    let before = response.answers.len();
    response.answers.retain(|record| match &record.data {
        RData::A(a) => !blocked(IpAddr::V4(a.0)),
        RData::AAAA(aaaa) => !blocked(IpAddr::V6(aaaa.0)),
        _ => true,
    });
    before - response.answers.len()
}

/// Whether `addr` lies in `network/len` (of the same family).
fn within(addr: IpAddr, network: IpAddr, len: u8) -> bool {
    match (addr, network) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len.min(32))).unwrap_or(0);
            a.to_bits() & mask == n.to_bits() & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len.min(128))).unwrap_or(0);
            a.to_bits() & mask == n.to_bits() & mask
        }
        _ => false,
    }
}

/// A SERVFAIL (or other code) answer to `request`.
pub(crate) fn error_response(request: &Message, code: ResponseCode) -> Message {
    response(request, code, false)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn query(name: &str, record_type: RecordType) -> Message {
        let mut message = Message::query();
        message.metadata.id = 7;
        message.metadata.recursion_desired = true;
        message.add_query(Query::query(Name::from_str(name).expect("name"), record_type));
        message
    }

    fn lease(addr: u8, name: &str, expired: bool) -> Lease {
        let now = SystemTime::now();
        Lease {
            num: 0,
            addr: Ipv4Addr::new(192, 0, 2, addr),
            hardware_addr: [2, 0, 0, 0, 2, addr],
            hostname: Some(name.into()),
            hostname_override: None,
            expiry: Some(if expired { now - Duration::from_secs(1) } else { now + Duration::from_secs(600) }),
            last_ack: None,
            interface: "lan0".into(),
        }
    }

    fn local() -> LocalData {
        let leases = [
            lease(100, "lan2", false),
            lease(101, "gone", true),
            lease(102, "router", false),
            lease(103, "wpad", false),
            lease(104, "localhost", false),
        ];
        LocalData::build(leases.iter(), "router", &[IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))], SystemTime::now())
    }

    fn answer(request: &Message) -> Message {
        match decide(request, &local()) {
            Decision::Answer(answer) => answer,
            Decision::Forward { name, .. } => panic!("{name} was forwarded"),
        }
    }

    #[test]
    fn lease_names_router_name_and_ptr_are_local() {
        let a = answer(&query("lan2.lan.", RecordType::A));
        assert_eq!(a.answers.len(), 1);
        assert_eq!(a.answers[0].data, RData::A(A(Ipv4Addr::new(192, 0, 2, 100))));
        assert!(a.metadata.authoritative && a.metadata.recursion_available);
        assert_eq!(answer(&query("LAN2.", RecordType::A)).answers.len(), 1, "single label, any case");
        assert_eq!(answer(&query("lan2.lan.", RecordType::AAAA)).answers.len(), 0, "no data");
        let router = answer(&query("router.lan.", RecordType::A));
        assert_eq!(router.answers[0].data, RData::A(A(Ipv4Addr::new(192, 0, 2, 1))), "a client cannot take it");
        assert_eq!(answer(&query("gone.lan.", RecordType::A)).metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(answer(&query("nobody.", RecordType::A)).metadata.response_code, ResponseCode::NXDomain);
        let ptr = answer(&query("100.2.0.192.in-addr.arpa.", RecordType::PTR));
        assert_eq!(ptr.answers[0].data.to_string(), "lan2.lan.");
        let private = answer(&query("1.1.168.192.in-addr.arpa.", RecordType::PTR));
        assert_eq!(private.metadata.response_code, ResponseCode::NXDomain, "RFC 6303: never forwarded");
        assert_eq!(answer(&query("localhost.", RecordType::AAAA)).answers.len(), 1);
    }

    #[test]
    fn a_client_cannot_claim_wpad_or_localhost() {
        assert_eq!(answer(&query("wpad.lan.", RecordType::A)).metadata.response_code, ResponseCode::NXDomain);
        let localhost = answer(&query("localhost.", RecordType::A));
        assert_eq!(localhost.answers[0].data, RData::A(A(Ipv4Addr::LOCALHOST)), "{localhost:?}");
        let ptr = decide(&query("103.2.0.192.in-addr.arpa.", RecordType::PTR), &local());
        assert!(matches!(ptr, Decision::Forward { .. }), "no local name for the claiming device either: {ptr:?}");
    }

    #[test]
    fn everything_else_is_forwarded_and_bad_queries_answered() {
        assert!(
            matches!(decide(&query("www.example.org.", RecordType::A), &local()), Decision::Forward { name, .. } if name == "www.example.org")
        );
        let mut two = query("a.example.", RecordType::A);
        two.add_query(Query::query(Name::from_str("b.example.").expect("name"), RecordType::A));
        assert_eq!(answer(&two).metadata.response_code, ResponseCode::FormErr);
        let mut none = query("a.example.", RecordType::A);
        none.queries.clear();
        assert_eq!(answer(&none).metadata.response_code, ResponseCode::FormErr);
    }

    #[test]
    fn private_answers_for_public_names_are_dropped_unless_allowed() {
        let mut response = Message::response(1, OpCode::Query);
        let name = Name::from_str("evil.example.net.").expect("name");
        response.add_answer(Record::from_rdata(name.clone(), 60, RData::A(A(Ipv4Addr::new(192, 168, 1, 1)))));
        response.add_answer(Record::from_rdata(name, 60, RData::A(A(Ipv4Addr::new(203, 0, 113, 80)))));
        let mut allowed = response.clone();
        assert_eq!(drop_rebinding(&mut response, "evil.example.net", &[], &[]), 1);
        assert_eq!(response.answers.len(), 1);
        assert_eq!(drop_rebinding(&mut allowed, "evil.example.net", &["example.net".into()], &[]), 0);
    }

    #[test]
    fn the_delegated_prefix_and_the_uplinks_addresses_are_protected_too() {
        let name = Name::from_str("evil.example.net.").expect("name");
        let mut response = Message::response(1, OpCode::Query);
        for addr in ["2001:db8:100:1::23", "2001:db8:ffff::80"] {
            let aaaa = RData::AAAA(AAAA(addr.parse().expect("literal")));
            response.add_answer(Record::from_rdata(name.clone(), 60, aaaa));
        }
        for addr in [Ipv4Addr::new(198, 51, 100, 163), Ipv4Addr::new(203, 0, 113, 80)] {
            response.add_answer(Record::from_rdata(name.clone(), 60, RData::A(A(addr))));
        }
        let inside =
            [("2001:db8:100::".parse().expect("literal"), 56), (IpAddr::V4(Ipv4Addr::new(198, 51, 100, 163)), 32)];
        assert_eq!(drop_rebinding(&mut response, "evil.example.net", &[], &inside), 2);
        let left: Vec<String> = response.answers.iter().map(|r| r.data.to_string()).collect();
        assert_eq!(left, ["2001:db8:ffff::80", "203.0.113.80"]);
    }

    /// The fast path's rule and `decide` agree: every name `may_answer_locally` lets through is forwarded, and
    /// the LAN's own names are not.
    #[test]
    fn the_fast_paths_rule_is_what_decide_does() {
        let data = local();
        let names = [
            "laptop",
            "laptop.lan",
            "nobody.lan",
            "lan",
            "sub.nobody.lan",
            "www.example.org",
            "example.lan.org",
            "planet",
            "my-lan",
            "x.plan",
            "localhost",
            "a.localhost",
            "notlocalhost.com",
            "1.2.0.192.in-addr.arpa",
            "8.8.8.8.in-addr.arpa",
            "arpa",
            "example.arpa.net",
            "10.in-addr.arpa",
            "b.a.ip6.arpa",
        ];
        for name in names {
            for record_type in [RecordType::A, RecordType::PTR] {
                let forwarded = matches!(decide(&query(name, record_type), &data), Decision::Forward { .. });
                if !may_answer_locally(name.as_bytes(), LOCAL_DOMAIN) {
                    assert!(forwarded, "{name} {record_type}: the fast path would answer it from the cache");
                }
                if ["laptop", "laptop.lan", "nobody.lan", "lan", "localhost", "a.localhost"].contains(&name) {
                    assert!(!forwarded && may_answer_locally(name.as_bytes(), LOCAL_DOMAIN), "{name} {record_type}");
                }
            }
        }
    }
}
