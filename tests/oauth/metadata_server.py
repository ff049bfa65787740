"""A real HTTP server on 127.0.0.1 that serves client metadata documents, well-behaved or not, and records every
connection it accepts and every request it reads, so a test can prove a refused fetch never reached it."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from socket import socket
from typing import Any

JSON = "application/json"


@dataclass
class Reply:
    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": JSON})
    content_length: str | None = None
    """What Content-Length says; None sends the body's true length, "chunked" sends none (chunked encoding)."""
    stall_before_headers: bool = False
    """Send nothing until the server closes: a host that accepts the connection and never answers."""
    seconds_per_byte: float = 0.0
    """Send the body a byte at a time, this far apart: a host that answers, slowly enough to hold a reader forever."""


@dataclass(frozen=True)
class SeenRequest:
    path: str
    host: str | None


class MetadataServer:
    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.routes: dict[str, Reply] = {}
        self.requests: list[SeenRequest] = []
        self.server_names: list[str | None] = []
        """The name each TLS client asked for (SNI)."""
        self.connections = 0
        self.closing = threading.Event()
        self._lock = threading.Lock()
        self._http = _RecordingServer(self)
        self.port = self._http.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        if tls is not None:
            tls.sni_callback = self._record_server_name
            self._http.socket = tls.wrap_socket(self._http.socket, server_side=True)
            self.base = f"https://127.0.0.1:{self.port}"

    def _record_server_name(self, _socket: ssl.SSLObject, name: str | None, _context: ssl.SSLContext) -> None:
        with self._lock:
            self.server_names.append(name)

    def serve_json(self, path: str, document: dict[str, Any], **reply: Any) -> str:
        """Serve `document` at `path`; the URL it is served at."""
        self.routes[path] = Reply(body=json.dumps(document).encode(), **reply)
        return self.base + path

    def count_connection(self) -> None:
        with self._lock:
            self.connections += 1

    def record(self, seen: SeenRequest) -> None:
        with self._lock:
            self.requests.append(seen)

    def reset(self) -> None:
        """Forget routes and what was seen, and release any reply still stalling, so one server serves many tests."""
        with self._lock:
            self.closing.set()
            self.closing = threading.Event()
            self.routes = {}
            self.requests = []
            self.connections = 0

    def start(self) -> None:
        threading.Thread(target=self._http.serve_forever, name="metadata-server", daemon=True).start()

    def stop(self) -> None:
        self.closing.set()
        self._http.shutdown()
        self._http.server_close()


class _RecordingServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: MetadataServer) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        self.owner.count_connection()
        super().process_request(request, client_address)

    def handle_error(self, request: socket | tuple[bytes, socket], client_address: Any) -> None:
        pass  # a client that hangs up mid-body (as a size cap does) is expected here


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _RecordingServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        owner = self.server.owner
        owner.record(SeenRequest(self.path, self.headers.get("Host")))
        reply = owner.routes.get(self.path, Reply(status=404, body=b"{}"))
        closing = owner.closing
        if reply.stall_before_headers:
            closing.wait()
            return
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Connection", "close")
        if reply.content_length == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for start in range(0, len(reply.body), 1024):
                chunk = reply.body[start : start + 1024]
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
            return
        self.send_header("Content-Length", reply.content_length or str(len(reply.body)))
        self.end_headers()
        if reply.seconds_per_byte:
            for byte in reply.body:
                if closing.wait(reply.seconds_per_byte):
                    return
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
            return
        self.wfile.write(reply.body)


def make_certificate(folder: Path, host: str) -> tuple[ssl.SSLContext, ssl.SSLContext] | None:
    """A self-signed certificate for `host`, as a server context and a client context that trusts only it; None
    without the openssl command."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    key, cert = folder / "key.pem", folder / "cert.pem"
    new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"]
    subject = ["-subj", f"/CN={host}", "-addext", f"subjectAltName=DNS:{host}"]
    subprocess.run(
        [openssl, "req", "-x509", *new_key, "-keyout", str(key), "-out", str(cert), *subject],
        check=True,
        capture_output=True,
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    return server, ssl.create_default_context(cafile=str(cert))


@contextmanager
def metadata_server(tls: ssl.SSLContext | None = None) -> Iterator[MetadataServer]:
    server = MetadataServer(tls)
    server.start()
    try:
        yield server
    finally:
        server.stop()
