"""A real HTTP server on 127.0.0.1 for download tests, with misbehaviours on demand.

    server.behaviours["/p/model.weights.h5"] = "drop"   # close the connection mid-file
    "drop-once", "corrupt", "slow", "404", "503-once", "delay" (answer, but after 0.2 s)
"""

import http.server
import threading
import time
import urllib.parse
from pathlib import Path


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
        if behaviour == "corrupt":
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        if behaviour == "delay":
            time.sleep(0.2)
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if behaviour == "drop":
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if behaviour == "slow":
            self.wfile.write(data[:10])
            self.wfile.flush()
            time.sleep(3)
        try:
            self.wfile.write(data[10:] if behaviour == "slow" else data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, as a timing-out client should

    def log_message(self, *args):
        pass


class PresetServer:
    def __init__(self, root):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.root = Path(root)
        self.httpd.requests = []
        self.httpd.behaviours = {}
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

    def requests_for(self, path):
        return self.httpd.requests.count(path)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
