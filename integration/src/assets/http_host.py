"""The lab's "internet host": answers every GET with the address it sees the client at, so tests can tell
whether traffic was NATed (IPv4: the router's uplink address) or not (IPv6: the device's own address)."""
import http.server
import socket
import sys


class WhoAmI(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        client = self.client_address[0].removeprefix("::ffff:")
        body = f"client={client}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        sys.stderr.write("%s %s\n" % (self.client_address[0].removeprefix("::ffff:"), format % args))
        sys.stderr.flush()


class DualStackServer(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6

    def server_bind(self):
        # One socket for IPv4 and IPv6, on every address of the namespace.
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


port = int(sys.argv[1]) if len(sys.argv) > 1 else 80
DualStackServer(("::", port), WhoAmI).serve_forever()
