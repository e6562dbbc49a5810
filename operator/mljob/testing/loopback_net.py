"""The end-to-end tier's two small network pieces, on one loopback address of their own:

- `ServiceDNS`: a DNS responder that answers every name under `svc.<cluster domain>` with that
  address (A), nothing for AAAA, NXDOMAIN for the rest. Only KubeRay uses it, through a
  resolv.conf bind-mounted in its own mount namespace (see e2e.py).
- `DashboardProxy`: an HTTP reverse proxy on <address>:8265 (the port KubeRay puts in every head
  Service's `dashboard` port) that sends every request to the one local Ray dashboard, adding the
  Ray head's token, and records what KubeRay asked for which cluster.

So KubeRay's `http://<cluster>-head-svc.<ns>.svc.cluster.local:8265/api/jobs/...` reaches a real
Ray head, and nothing ever dials a kwok pod IP: every socket here is on 127.0.0.0/8.
"""

from __future__ import annotations

import contextlib
import http.client
import random
import socket
import struct
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DNS_PORT = 53
DASHBOARD_PORT = 8265
_TYPE_A, _TYPE_AAAA, _CLASS_IN = 1, 28, 1
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "host"}


def pick_loopback_address(ports: tuple[int, ...] = (DNS_PORT, DASHBOARD_PORT)) -> str:
    """A random 127.x.y.z on which `ports` are free (UDP for 53, TCP for the others), so that
    several test sessions on one machine never collide on the fixed ports 53 and 8265."""
    for _ in range(50):
        address = f"127.{random.randint(64, 250)}.{random.randint(0, 255)}.{random.randint(2, 254)}"
        try:
            for port in ports:
                kind = socket.SOCK_DGRAM if port == DNS_PORT else socket.SOCK_STREAM
                with socket.socket(socket.AF_INET, kind) as sock:
                    sock.bind((address, port))
        except OSError:
            continue
        return address
    raise OSError("no free loopback address for the DNS responder and the dashboard proxy")


def dns_answer(query: bytes, suffix: str, address: str) -> bytes | None:
    """The response to one DNS query: `address` for A under `suffix`, empty for AAAA there,
    NXDOMAIN elsewhere. None for what is not a single-question query."""
    if len(query) < 12:
        return None
    ident, flags, questions = struct.unpack("!HHH", query[:6])
    if questions != 1 or flags & 0x8000:
        return None
    labels, offset = [], 12
    while offset < len(query) and query[offset] != 0:
        length = query[offset]
        labels.append(query[offset + 1 : offset + 1 + length].decode("ascii", "replace"))
        offset += 1 + length
    offset += 1
    if offset + 4 > len(query):
        return None
    qtype, qclass = struct.unpack("!HH", query[offset : offset + 4])
    question = query[12 : offset + 4]
    name = ".".join(labels).lower().rstrip(".")
    ours = name == suffix or name.endswith("." + suffix)
    answers = b""
    if ours and qtype == _TYPE_A and qclass == _CLASS_IN:
        # a pointer to the question's name, A, IN, TTL 5 s, 4 bytes of address
        answers = struct.pack("!HHHIH", 0xC00C, _TYPE_A, _CLASS_IN, 5, 4)
        answers += socket.inet_aton(address)
    rcode = 0 if ours else 3
    response_flags = 0x8000 | 0x0400 | (flags & 0x7900) | 0x0080 | rcode  # QR AA opcode RD RA
    header = struct.pack("!HHHHHH", ident, response_flags, 1, 1 if answers else 0, 0, 0)
    return header + question + answers


class ServiceDNS:
    """`dns_answer` served on <address>:53/udp from a daemon thread."""

    def __init__(self, address: str, cluster_domain: str = "cluster.local") -> None:
        self.address = address
        self.suffix = f"svc.{cluster_domain}"
        self.queries: list[str] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((address, DNS_PORT))
        self._thread = threading.Thread(target=self._serve, name="e2e-dns", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                query, peer = self._sock.recvfrom(4096)
            except OSError:
                return  # closed
            response = dns_answer(query, self.suffix, self.address)
            if response is not None:
                with contextlib.suppress(OSError):
                    self._sock.sendto(response, peer)

    def resolv_conf(self) -> str:
        return f"nameserver {self.address}\noptions ndots:1 timeout:2 attempts:2\n"

    def stop(self) -> None:
        self._sock.close()


@dataclass(frozen=True)
class ProxiedRequest:
    method: str
    host: str  # the Host header: which simulated cluster KubeRay meant
    path: str
    status: int


class DashboardProxy:
    """<address>:8265 -> the local Ray dashboard, with its token; records every request."""

    def __init__(self, address: str, upstream_port: int, token: str) -> None:
        self.address = address
        self.requests: list[ProxiedRequest] = []
        lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                headers["Authorization"] = f"Bearer {token}"
                upstream = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=60)
                try:
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    payload = response.read()
                    status = response.status
                    reply_headers = [
                        (k, v)
                        for k, v in response.getheaders()
                        if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length"
                    ]
                except OSError as error:
                    status, payload = 502, f"e2e dashboard proxy: {error}".encode()
                    reply_headers = [("Content-Type", "text/plain")]
                finally:
                    upstream.close()
                with lock:
                    proxy.requests.append(
                        ProxiedRequest(
                            self.command, self.headers.get("Host", ""), self.path, status
                        )
                    )
                self.send_response(status)
                for key, value in reply_headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _forward

            def log_message(self, format: str, *args: object) -> None:
                pass  # recorded in proxy.requests instead

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: object, client_address: object) -> None:
                pass  # a client that hung up (KubeRay's poll timing out): nothing to report

        self._server = Server((address, DASHBOARD_PORT), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="e2e-dashboard-proxy", daemon=True
        )
        self._thread.start()

    def requests_for(self, host_prefix: str) -> list[ProxiedRequest]:
        return [r for r in list(self.requests) if r.host.startswith(host_prefix)]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
