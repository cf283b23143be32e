#!/usr/bin/python3
"""Probes a router during an update, from a LAN device: ICMP echo to a host behind the router (forwarded),
DNS queries to the router, DHCPDISCOVERs to the router, each every INTERVAL seconds for DURATION seconds, or until SIGTERM.
Prints one JSON line: what was sent and answered, and the longest gap between answers for each."""
import json, os, random, select, signal, socket, struct, sys, threading, time

router, target, interface, duration = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
INTERVAL = 0.01
DHCP_INTERVAL = 0.05
results = {}
stopping = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stopping.set())


def running(end):
    return time.monotonic() < end and not stopping.is_set()


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def gap(times, start, end):
    points = [start] + sorted(times) + [end]
    return max(b - a for a, b in zip(points, points[1:]))


def ping():
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    ident = os.getpid() & 0xFFFF
    sent, answered, seen = 0, [], set()
    start = time.monotonic()
    end = start + duration
    while running(end):
        sent += 1
        header = struct.pack("!BBHHH", 8, 0, 0, ident, sent & 0xFFFF)
        payload = b"update-gap" * 4
        s.sendto(struct.pack("!BBHHH", 8, 0, checksum(header + payload), ident, sent & 0xFFFF) + payload, (target, 0))
        deadline = time.monotonic() + INTERVAL
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([s], [], [], left)[0]:
                break
            packet = s.recv(2048)
            icmp = packet[(packet[0] & 0x0F) * 4:]
            kind, _, _, rid, seq = struct.unpack("!BBHHH", icmp[:8])
            if kind == 0 and rid == ident and seq not in seen:
                seen.add(seq)
                answered.append(time.monotonic())
    end = min(end, time.monotonic())
    # Late replies still count as delivered.
    s.settimeout(1.0)
    try:
        while True:
            icmp = (lambda p: p[(p[0] & 0x0F) * 4:])(s.recv(2048))
            kind, _, _, rid, seq = struct.unpack("!BBHHH", icmp[:8])
            if kind == 0 and rid == ident and seq not in seen:
                seen.add(seq)
    except socket.timeout:
        pass
    results["forwarded"] = {"sent": sent, "answered": len(seen), "lost": sent - len(seen),
                            "longest_gap_ms": round(gap(answered, start, end) * 1000)}


def dns():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    name = b"".join(bytes([len(l)]) + l for l in b"www.example.org".split(b".")) + b"\0"
    sent, answered = 0, []
    start = time.monotonic()
    end = start + duration
    while running(end):
        sent += 1
        s.sendto(struct.pack("!HHHHHH", sent & 0xFFFF, 0x0100, 1, 0, 0, 0) + name + b"\0\1\0\1", (router, 53))
        deadline = time.monotonic() + INTERVAL
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([s], [], [], left)[0]:
                break
            reply = s.recv(4096)
            if len(reply) > 4 and reply[3] & 0x0F == 0:
                answered.append(time.monotonic())
    end = min(end, time.monotonic())
    results["dns"] = {"sent": sent, "answered": len(answered), "longest_gap_ms": round(gap(answered, start, end) * 1000)}


def dhcp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
    s.bind(("0.0.0.0", 68))
    mac = bytes([0x02, 0x00, 0x00, 0x00, 0x77, 0x01])
    sent, answered = 0, []
    start = time.monotonic()
    end = start + duration
    while running(end):
        sent += 1
        xid = random.getrandbits(32)
        packet = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 0, xid, 0, 0x8000, b"\0" * 4, b"\0" * 4,
                             b"\0" * 4, b"\0" * 4, mac + b"\0" * 10, b"\0" * 64, b"\0" * 128)
        packet += bytes([99, 130, 83, 99, 53, 1, 1, 255])
        s.sendto(packet, ("255.255.255.255", 67))
        deadline = time.monotonic() + DHCP_INTERVAL
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([s], [], [], left)[0]:
                break
            reply = s.recv(4096)
            if len(reply) > 240 and reply[4:8] == struct.pack("!I", xid):
                answered.append(time.monotonic())
    end = min(end, time.monotonic())
    results["dhcp"] = {"sent": sent, "answered": len(answered), "longest_gap_ms": round(gap(answered, start, end) * 1000)}


threads = [threading.Thread(target=f) for f in (ping, dns, dhcp)]
for t in threads:
    t.start()
print("probing", flush=True, file=sys.stderr)
for t in threads:
    while t.is_alive():
        t.join(0.5)
print(json.dumps(results), flush=True)
