"""A local HTTP server for download tests: Range support, and knobs to ignore Range, corrupt or cut."""
from __future__ import annotations

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Server:
    """Serves ``files`` with Range support; knobs to ignore Range, corrupt or cut responses."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []  # paths, in order
        self.ranges: list[str | None] = []  # their Range headers
        self.sent = 0
        self.honour_range = True
        self.corrupt_next = 0  # serve this many corrupted bodies
        self.cut_next_after: int | None = None  # close the next response after this many bytes
        srv = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                rng = self.headers.get("Range")
                srv.requests.append(self.path)
                srv.ranges.append(rng)
                body = srv.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                if srv.corrupt_next:
                    srv.corrupt_next -= 1
                    body = bytes([body[0] ^ 0xFF]) + body[1:]
                start = int(rng.split("=")[1].split("-")[0]) if rng and srv.honour_range else 0
                if start >= len(body) and rng and srv.honour_range:
                    self.send_response(416)
                    self.end_headers()
                    return
                chunk = body[start:]
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.send_header("Content-Length", str(len(chunk)))
                self.end_headers()
                if srv.cut_next_after is not None:
                    chunk, srv.cut_next_after = chunk[:srv.cut_next_after], None
                    self.close_connection = True
                self.wfile.write(chunk)
                srv.sent += len(chunk)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
