"""Crafted malformed DHCPv4 requests and router solicitations, sent from a LAN device (scapy, run with Debian's
/usr/bin/python3). The test checks routerd afterwards: still running, no service restarted, still serving."""
import random
import sys

from scapy.all import BOOTP, DHCP, IP, UDP, Ether, ICMPv6ND_RS, IPv6, Raw, conf, sendp, send

conf.verb = 0
iface = sys.argv[1] if len(sys.argv) > 1 else "eth0"
mac = "02:00:00:00:02:01"
chaddr = bytes.fromhex(mac.replace(":", ""))
l2 = Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / IP(src="0.0.0.0", dst="255.255.255.255") / UDP(sport=68, dport=67)
rng = random.Random(7)
sent = 0


def dhcp(payload):
    global sent
    sendp(l2 / Raw(payload), iface=iface)
    sent += 1


good = bytes(BOOTP(chaddr=chaddr, xid=1) / DHCP(options=[("message-type", "discover"), ("hostname", b"ok"), "end"]))
cookie = 236
# Truncated everywhere, including inside the fixed header and before the End option.
for length in list(range(0, 240, 7)) + list(range(240, len(good))):
    dhcp(good[:length])
# Options running past the end, zero-length known options, impossible lengths.
for options in [b"\x35\x01\x01\x0c\xff", b"\x35\x01\x01\x32\x00\xff", b"\x35\x01\x01\x36\x02\x01\x02\xff",
                b"\x35\x05\x01\x01\x01\x01\x01\xff", b"\x35\x01\x01\x37\x00\xff", b"\x35\x01\x01" + b"\x0c\xff" + b"x" * 255]:
    dhcp(good[:cookie + 4] + options)
# Absurd header fields: hardware length 200, hardware type 99, a BOOTREPLY, an unknown message type.
for index, value in [(2, 200), (1, 99), (0, 2)]:
    bad = bytearray(good)
    bad[index] = value
    dhcp(bytes(bad))
dhcp(bytes(BOOTP(chaddr=chaddr, xid=2) / DHCP(options=[("message-type", 99), "end"])))
# A hostname that is all spaces and non-ASCII, and one of 255 bytes.
dhcp(bytes(BOOTP(chaddr=chaddr, xid=3) / DHCP(options=[("message-type", "request"), ("hostname", "  ü ß  ".encode()), ("requested_addr", "192.0.2.150"), "end"])))
dhcp(bytes(BOOTP(chaddr=chaddr, xid=4) / DHCP(options=[("message-type", "discover"), ("hostname", b"h" * 255), "end"])))
# Random corruption of a good DISCOVER.
for _ in range(300):
    bad = bytearray(good)
    for _ in range(rng.randint(1, 6)):
        bad[rng.randrange(len(bad))] = rng.randrange(256)
    dhcp(bytes(bad))

rs = IPv6(dst="ff02::2", hlim=255)
solicitations = [
    rs / ICMPv6ND_RS() / Raw(b"\x01\x00\x00\x00\x00\x00\x00\x00"),  # option length 0: a naive parser loops forever
    rs / ICMPv6ND_RS() / Raw(b"\x01\x05ab"),  # option longer than the packet
    rs / ICMPv6ND_RS(code=7),
    rs / ICMPv6ND_RS() / Raw(bytes(rng.randrange(256) for _ in range(300))),
]
for packet in solicitations * 5:
    send(packet, iface=iface)
    sent += 1
# DNS to the router (the device has 192.0.2.11): garbage, lying counts, a compression loop, names too long,
# a response and an UPDATE sent as queries, and TCP that promises more than it sends.
import socket
import struct

dns_server = "192.0.2.1"
header = lambda qd, flags=0x0100: struct.pack(">HHHHHH", 0x1234, flags, qd, 0, 0, 0)
question = b"\x03www\x07example\x03org\x00\x00\x01\x00\x01"
dns_packets = [
    b"",
    b"\x12\x34\x01",
    header(50),
    header(1) + b"\xc0\x0c\x00\x01\x00\x01",  # the name points at itself
    header(1) + (b"\x3f" + b"a" * 63) * 5 + b"\x00\x00\x01\x00\x01",  # 320 bytes of name
    header(1) + question[:9],
    header(1, flags=0x8180) + question,  # a response
    header(1, flags=0x2800) + question,  # opcode UPDATE
    header(2) + question,
] + [bytes(rng.randrange(256) for _ in range(rng.randint(1, 600))) for _ in range(300)]
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for packet in dns_packets:
    udp.sendto(packet, (dns_server, 53))
    sent += 1
for promise in [b"\xff\xff" + header(1), b"\x00\x05ab", b"\x00"]:
    tcp = socket.create_connection((dns_server, 53), timeout=2)
    tcp.sendall(promise)
    tcp.close()
    sent += 1
print(f"sent {sent} malformed packets")
