//! `rtrctl capture`: pcapng that tshark decodes, with the ring's backfill first and live packets after, and a
//! reader that never reads does not hold routerd up.

use std::{process::Stdio, time::Duration};

use integration::{DhcpClientKind, Lab, LabOptions};

const TIMEOUT: Duration = Duration::from_secs(20);

fn rtrctl_args(lab: &Lab) -> Vec<String> {
    ["--router", "127.0.0.1:9339", "--identity", &lab.router().identity().to_string_lossy()].map(String::from).to_vec()
}

/// `rtrctl capture -w FILE EXTRA…` on the router, until the lab stops it; its PID.
fn start_capture(lab: &Lab, name: &str, file: &std::path::Path, extra: &[&str]) -> u32 {
    let args: Vec<String> = rtrctl_args(lab)
        .into_iter()
        .chain(["capture".to_string(), "-w".to_string(), file.display().to_string()])
        .chain(extra.iter().map(|a| a.to_string()))
        .collect();
    let spawned = lab.tracker().spawn(
        &format!("rtrctl capture ({name})"),
        lab.router().netns(),
        lab.router().rtrctl_binary(),
        &args,
        &[],
        &lab.work_dir().join(format!("{name}.log")),
    );
    lab.check(spawned, &format!("the {name} capture"))
}

fn tshark(file: &std::path::Path) -> String {
    let fields = ["frame.interface_name", "dhcp.option.dhcp", "dhcp.option.hostname"];
    integration::tshark::fields(file, None, &fields).expect("tshark")
}

#[test]
fn capture_streams_the_backfill_then_live_packets_as_pcapng() {
    let lab = Lab::start(LabOptions::default()).expect("the lab starts");
    let client =
        lab.check(lab.lan(2).start_dhcp_client(DhcpClientKind::Udhcpc { hostname: Some("lan2".into()) }), "udhcpc");
    lab.check(client.wait_bound(TIMEOUT), "lan2's lease");

    // A reader that never reads (a pipe nobody drains) is running the whole time.
    let mut stalled = lab
        .router()
        .netns()
        .command(lab.router().rtrctl_binary())
        .args(rtrctl_args(&lab))
        .arg("capture")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("a stalled reader");

    // Backfill: the lease lan2 got before the capture started.
    let backfill = lab.work_dir().join("backfill.pcapng");
    let live = lab.work_dir().join("live.pcapng");
    let live_pid = start_capture(&lab, "live", &live, &["--no-backfill"]);
    let backfill_pid = start_capture(&lab, "backfill", &backfill, &["--protocol", "dhcp4"]);
    let decoded = lab.check(
        integration::wait::until("lan2's DHCP exchange in the backfill", Duration::from_secs(10), || {
            let text = tshark(&backfill);
            Ok((text.contains("lan0\t5") && text.contains("lan2")).then_some(text))
        }),
        "backfill",
    );
    assert!(decoded.lines().all(|l| !l.split('\t').nth(1).unwrap_or_default().is_empty()), "only DHCPv4: {decoded}");
    lab.tracker().stop(backfill_pid);
    // routerd's own DISCOVER on the uplink comes from 0.0.0.0, as RFC 2131 asks of a client without an address.
    let uplink_discovers = "dhcp.option.dhcp == 1 && frame.interface_name == \"uplink0\"";
    let sources = integration::tshark::fields(&backfill, Some(uplink_discovers), &["ip.src"]).expect("tshark");
    assert!(!sources.trim().is_empty() && sources.lines().all(|l| l == "0.0.0.0"), "{sources}");

    // Live: a new client's exchange arrives in the capture that skipped the backfill, and DNS still answers
    // promptly despite the stalled reader.
    let client = lab
        .check(lab.lan(1).start_dhcp_client(DhcpClientKind::Udhcpc { hostname: Some("lan1-live".into()) }), "udhcpc");
    lab.check(client.wait_bound(TIMEOUT), "lan1's lease while a reader is stalled");
    lab.check(
        integration::wait::until("lan1's DHCP exchange in the live capture", Duration::from_secs(10), || {
            let text = tshark(&live);
            Ok(text.contains("lan1-live").then_some(()))
        }),
        "live",
    );
    assert!(!tshark(&live).contains("\tlan2"), "no backfill was asked for");
    let answer = lab.check(lab.lan(1).dig("192.0.2.1", "www.example.org", "A"), "DNS while a reader is stalled");
    assert_eq!(answer, ["203.0.113.80"]);

    // A burst of DNS far beyond what the stalled reader's pipe and backlog hold: the capture drops packets for
    // that reader (counted in the metrics), and DNS and DHCP go on serving.
    let flood = lab
        .lan(1)
        .netns()
        .command("/usr/bin/python3")
        .args(["-c", FLOOD, "192.0.2.1", "60000"])
        .output()
        .expect("python3");
    // One device gets its DNS budget (bursts of 1000, then 500 a second); the rest is dropped before any work,
    // but the capture still sees every packet.
    let answered: u32 = String::from_utf8_lossy(&flood.stdout).trim().parse().unwrap_or(0);
    assert!(answered >= 1000, "answers to the burst: {answered} ({})", String::from_utf8_lossy(&flood.stderr));
    let metrics = lab.check(integration::metrics::scrape(lab.router().netns(), "127.0.0.1"), "metrics");
    let dropped = integration::metrics::sample(&metrics, "routerd_capture_reader_dropped_total").unwrap_or(0.0);
    eprintln!("answered {answered}, the stalled reader lost {dropped}");
    assert!(dropped > 0.0, "the stalled reader lost packets rather than holding routerd up: {dropped}");
    let answer = lab.check(lab.lan(1).dig("192.0.2.1", "www.example.org", "A"), "DNS after the burst");
    assert_eq!(answer, ["203.0.113.80"]);
    client.stop();
    let again = lab
        .check(lab.lan(1).start_dhcp_client(DhcpClientKind::Udhcpc { hostname: Some("lan1-again".into()) }), "udhcpc");
    lab.check(again.wait_bound(TIMEOUT), "a lease after the burst, with the reader still stalled");
    assert!(stalled.try_wait().ok().flatten().is_none(), "the stalled reader is still connected");
    lab.tracker().stop(live_pid);
    let _ = stalled.kill();
    let _ = stalled.wait();

    // DNS is captured while someone watches; with nobody watching it stays out of the ring (the default,
    // capture_dns_history off), so the backfill of a capture started later has the DHCP but not that DNS.
    let names =
        |file: &std::path::Path| integration::tshark::fields(file, Some("dns"), &["dns.qry.name"]).expect("tshark");
    assert!(names(&live).contains("www.example.org"), "DNS while watched: {}", names(&live));
    std::thread::sleep(Duration::from_secs(3));
    let unwatched = lab.check(lab.lan(1).dig("192.0.2.1", "example.net", "A"), "DNS with nobody watching");
    assert_eq!(unwatched, ["203.0.113.80"]);
    let later = lab.work_dir().join("later.pcapng");
    let later_pid = start_capture(&lab, "later", &later, &[]);
    lab.check(
        integration::wait::until("the later capture's backfill", Duration::from_secs(10), || {
            Ok(tshark(&later).contains("lan1-again").then_some(()))
        }),
        "backfill of the later capture",
    );
    lab.tracker().stop(later_pid);
    assert!(!names(&later).contains("example.net"), "DNS asked while nobody watched is in the ring: {}", names(&later));
}

/// Sends N queries for a cached name as fast as the socket takes them, then counts the answers.
const FLOOD: &str = r#"
import socket, struct, sys, time
server, count = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
name = b"".join(bytes([len(l)]) + l for l in b"www.example.org".split(b".")) + b"\0"
answered = 0
s.settimeout(0)
for i in range(count):
    s.sendto(struct.pack("!HHHHHH", i & 0xffff, 0x0100, 1, 0, 0, 0) + name + b"\0\1\0\1", (server, 53))
    try:
        while True:
            s.recv(4096); answered += 1
    except BlockingIOError:
        pass
    if i % 500 == 0:
        time.sleep(0.01)
s.settimeout(2)
try:
    while True:
        s.recv(4096); answered += 1
except socket.timeout:
    pass
print(answered)
"#;
