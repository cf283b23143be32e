"""Complete DHCP exchanges (DISCOVER, OFFER, REQUEST, ACK) for a set of made-up clients, round and round until
killed, from a LAN device (scapy, run with Debian's /usr/bin/python3). Every ACK is appended to LOG as
"MAC IP" the moment it arrives:  dora_loop.py IFACE CLIENTS LOG"""
import random
import sys

from scapy.all import BOOTP, DHCP, IP, UDP, Ether, conf, srp1

conf.verb = 0
conf.checkIPaddr = False
iface, count, log_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rng = random.Random(9)
macs = [bytes([0x0a, 0x99] + [rng.randrange(256) for _ in range(4)]) for _ in range(count)]


def option(packet, name):
    for item in packet[DHCP].options:
        if isinstance(item, tuple) and item[0] == name:
            return item[1]
    return None


def exchange(mac, log):
    text = ":".join(f"{b:02x}" for b in mac)
    base = Ether(src=text, dst="ff:ff:ff:ff:ff:ff") / IP(src="0.0.0.0", dst="255.255.255.255") / UDP(sport=68, dport=67)
    xid = rng.randrange(1 << 32)
    offer = srp1(base / BOOTP(chaddr=mac, xid=xid, flags=0x8000) / DHCP(options=[("message-type", "discover"), "end"]),
                 iface=iface, timeout=0.5)
    if offer is None or DHCP not in offer or option(offer, "message-type") != 2:
        return
    address, server = offer[BOOTP].yiaddr, option(offer, "server_id")
    request = base / BOOTP(chaddr=mac, xid=xid, flags=0x8000) / DHCP(
        options=[("message-type", "request"), ("requested_addr", address), ("server_id", server), "end"])
    ack = srp1(request, iface=iface, timeout=0.5)
    if ack is not None and DHCP in ack and option(ack, "message-type") == 5:
        log.write(f"{text} {ack[BOOTP].yiaddr}\n")
        log.flush()


with open(log_path, "a") as log:
    while True:
        for mac in macs:
            exchange(mac, log)
