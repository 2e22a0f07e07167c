"""A real HTTP server on 127.0.0.1 for download tests, with misbehaviours on demand.

    server.behaviours["/p/model.weights.h5"] = "drop"   # close the connection mid-file
    "drop-once", "corrupt", "slow", "404", "503-once", "delay" (answer, but after 0.2 s),
    "endless"       a body without Content-Length that never ends (capped at ENDLESS_CAP)
    "huge"          announces a 10 GB Content-Length, then sends the file
    "drip"          the file, a byte every DRIP_SECONDS (about 100 bytes a second)
    "drip-headers"  the headers, a byte every DRIP_SECONDS, then the file
    "hold"          half the file, then the rest once `server.release` is set
`server.bytes_sent[path]` counts the body bytes written for a path.
"""

import http.server
import threading
import time
import urllib.parse
from pathlib import Path

ENDLESS_CAP = 64 << 20  # so that a client that never stops reading cannot fill the disk either
DRIP_SECONDS = 0.01


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        server = self.server
        path = urllib.parse.unquote(urllib.parse.urlparse(self.path).path)
        with server.lock:
            server.requests.append(path)
            behaviour = server.behaviours.get(path)
            if behaviour and behaviour.endswith("-once"):
                del server.behaviours[path]
                behaviour = behaviour.removesuffix("-once")
        file = server.root / path.lstrip("/")
        if behaviour == "404" or not file.is_file():
            self.send_error(404)
            return
        if behaviour == "503":
            self.send_error(503)
            return
        data = file.read_bytes()
        try:
            self._answer(server, path, behaviour, data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, as a timing-out client should

    def _answer(self, server, path, behaviour, data):
        if behaviour == "corrupt":
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        if behaviour == "delay":
            time.sleep(0.2)
        if behaviour == "endless":
            self.send_response(200)
            self.end_headers()  # no Content-Length: the body ends when the connection does
            chunk = b"\0" * (1 << 16)
            while server.bytes_sent.get(path, 0) < ENDLESS_CAP:
                self._send(path, chunk)
            return
        if behaviour == "drip-headers":
            head = f"HTTP/1.0 200 OK\r\nContent-Length: {len(data)}\r\nX-Padding: {'x' * 200}\r\n\r\n"
            for byte in head.encode():
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(DRIP_SECONDS)
            self._send(path, data)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(10**10 if behaviour == "huge" else len(data)))
        self.end_headers()
        if behaviour == "drop":
            self._send(path, data[: len(data) // 2])
            self.close_connection = True
            return
        if behaviour == "slow":
            self._send(path, data[:10])
            time.sleep(3)
            data = data[10:]
        if behaviour == "drip":
            for byte in data:
                self._send(path, bytes([byte]))
                time.sleep(DRIP_SECONDS)
            return
        if behaviour == "hold":
            self._send(path, data[: len(data) // 2])
            server.release.wait(120)
            data = data[len(data) // 2:]
        self._send(path, data)

    def _send(self, path, data):
        self.wfile.write(data)
        self.wfile.flush()
        with self.server.lock:
            self.server.bytes_sent[path] = self.server.bytes_sent.get(path, 0) + len(data)

    def log_message(self, *args):
        pass


class PresetServer:
    def __init__(self, root):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.root = Path(root)
        self.httpd.requests = []
        self.httpd.behaviours = {}
        self.httpd.bytes_sent = {}
        self.httpd.release = threading.Event()
        self.httpd.lock = threading.Lock()
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self):
        host, port = self.httpd.server_address
        return f"http://{host}:{port}"

    @property
    def root(self):
        return self.httpd.root

    @property
    def behaviours(self):
        return self.httpd.behaviours

    @property
    def bytes_sent(self):
        return self.httpd.bytes_sent

    @property
    def release(self):
        return self.httpd.release

    def requests_for(self, path):
        return self.httpd.requests.count(path)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.release.set()  # let held answers finish
        self.httpd.shutdown()
        self.httpd.server_close()
