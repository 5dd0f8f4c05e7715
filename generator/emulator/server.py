"""The emulator's HTTP server, and :class:`Emulator`, the handle tests and the CLI use.

Routes::

    POST /(v1|v1beta1)/projects/{p}/locations/{loc}/publishers/{pub}/models/{model}:{method}
    GET  /_emulator/stats      counts per model/location/status, faults, the last request bodies
    GET  /_emulator/config     the configuration in effect
    POST /_emulator/config     replace some keys of it (JSON object; see generator.emulator.config)
    POST /_emulator/reset      forget requests: stats, request numbers, quota windows

It listens on 127.0.0.1 by default and has no authentication: it accepts any bearer token.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import select
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from generator.emulator.config import ConfigError, EmulatorConfig, parse_config
from generator.emulator.service import JSON_TYPE, Call, Reply, Service
from generator.emulator.wire import ApiError, invalid

logger = logging.getLogger(__name__)

MODEL_ROUTE = re.compile(
    r"^/(?P<version>v1|v1beta1)/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
    r"/publishers/(?P<publisher>[^/]+)/models/(?P<model>[^/:]+):(?P<method>[A-Za-z]+)$"
)
_MAX_ADMIN_BODY = 1024 * 1024


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], service: Service) -> None:
        self.service = service
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients giving up (timing out, interrupted) are normal for an emulator of a slow API.
        if isinstance(sys.exc_info()[1], ConnectionError):
            logger.debug("client %s went away", client_address)
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Google's front end: the SDK reuses connections
    # TCP_NODELAY: the headers and the body go out in two writes; with Nagle's algorithm the body waits for the
    # client's delayed ACK of the headers (~40 ms on Linux), which added 40 ms to every answer (bench/quota.py).
    disable_nagle_algorithm = True
    server_version = "campaign-emulator"
    server: _Server

    def do_POST(self) -> None:
        body = self._read_body()
        if body is None:
            return
        path = self.path.split("?", 1)[0]
        service = self.server.service
        if path == "/_emulator/config":
            try:
                changes = json.loads(body or b"{}")
                config = service.configure(changes)
            except (ValueError, ConfigError) as e:
                self._send(Reply.error(invalid(str(e))))
                return
            self._send(Reply.json(200, config.to_json()))
            return
        if path == "/_emulator/reset":
            service.reset()
            self._send(Reply.json(200, {"reset": True}))
            return
        route = MODEL_ROUTE.match(path)
        if route is None:
            self._send(Reply.error(ApiError("NOT_FOUND", f"The requested URL {path} was not found on this server.")))
            return
        call = Call(
            api_version=route["version"],
            project=route["project"],
            location=route["location"],
            publisher=route["publisher"],
            model=route["model"],
            method=route["method"],
            body=body,
            headers={k.lower(): v for k, v in self.headers.items()},
        )
        self._send(service.handle(call))

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        service = self.server.service
        if path == "/_emulator/stats":
            self._send(Reply.json(200, service.stats.snapshot()))
        elif path == "/_emulator/config":
            self._send(Reply.json(200, service.config.to_json()))
        elif path in ("/", "/_emulator/health"):
            self._send(Reply.json(200, {"ok": True, "emulator": "vertex-ai"}))
        else:
            self._send(Reply.error(ApiError("NOT_FOUND", f"The requested URL {path} was not found on this server.")))

    def _read_body(self) -> bytes | None:
        length = self.headers.get("Content-Length")
        if length is None:
            if self.headers.get("Transfer-Encoding"):
                self.close_connection = True
                self._send(
                    Reply.json(
                        411,
                        {
                            "error": {
                                "code": 411,
                                "message": "Length Required",
                                "status": "INVALID_ARGUMENT",
                            }
                        },
                    )
                )
                return None
            return b""
        try:
            n = int(length)
        except ValueError:
            n = -1
        if n < 0:
            self.close_connection = True
            self._send(Reply.error(invalid("Invalid Content-Length.")))
            return None
        return self.rfile.read(n)

    def _send(self, reply: Reply) -> None:
        if reply.drop == "reset":
            self._reset()
            return
        if reply.drop == "hang":
            self._hang(self.server.service.config.hang_seconds)
            self._reset()
            return
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)

    def _reset(self) -> None:
        """Close without a response; SO_LINGER 0 makes it a TCP reset rather than a clean close."""
        self.close_connection = True
        with contextlib.suppress(OSError):  # already gone
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def _hang(self, limit: float) -> None:
        """Wait until the client gives up (closes), the emulator stops or ``limit`` seconds pass."""
        end = time.monotonic() + limit
        stopping = self.server.service.stopping
        while not stopping.is_set() and time.monotonic() < end:
            readable, _, _ = select.select([self.connection], [], [], 0.05)
            if readable:
                try:
                    if not self.connection.recv(1, socket.MSG_PEEK):
                        return
                except OSError:
                    return

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)


class Emulator:
    """A local Vertex AI endpoint in a background thread.

    Example::

        with Emulator(config={"rpm": {"imagen-4.0-generate-001": 2}, "window_seconds": 1}) as emu:
            backend = VertexBackend(endpoint=emu.url)
            ...
            assert emu.stats()["by_status"] == {"200": 2, "429": 1}

    Args:
        host: the address to listen on; keep the default unless other machines must reach it (there
            is no authentication).
        port: the port; 0 picks a free one (read it back from :attr:`url`).
        config: an :class:`EmulatorConfig`, or its JSON form (see :mod:`generator.emulator.config`).
        clock: the clock of the quota windows (seconds, monotonic).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        config: EmulatorConfig | Mapping[str, Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if config is not None and not isinstance(config, EmulatorConfig):
            config = parse_config(config)
        self.service = Service(config, clock)
        self._address = (host, port)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def bind(self) -> Emulator:
        """Listen without serving yet, so :attr:`url` is known. OSError if the port is taken."""
        if self._server is None:
            self.service.stopping.clear()
            self._server = _Server(self._address, self.service)
        return self

    def start(self) -> Emulator:
        """Bind and serve in a daemon thread."""
        if self._thread is None:
            server = self.bind()._server
            assert server is not None
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.01},
                name=f"vertex-emulator:{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Bind and serve in the calling thread until interrupted (the CLI's way)."""
        server = self.bind()._server
        assert server is not None
        try:
            server.serve_forever(poll_interval=0.2)
        finally:
            self.service.stopping.set()
            server.server_close()
            self._server = None

    def stop(self) -> None:
        """Stop serving; requests still sleeping or hanging end at once."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self.service.stopping.set()
        if thread is not None:
            server.shutdown()
            thread.join(timeout=5)
        server.server_close()
        self._server = None
        self._thread = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what tests use ----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the emulator is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The base URL for the SDK (``HttpOptions(base_url=...)``) or CAMPAIGN_VERTEX_ENDPOINT."""
        if self._server is None:
            raise RuntimeError("the emulator is not running")
        host = str(self._server.server_address[0])
        return f"http://{'[' + host + ']' if ':' in host else host}:{self.port}"

    @property
    def config(self) -> EmulatorConfig:
        return self.service.config

    def configure(self, changes: Mapping[str, Any] | None = None, **keys: Any) -> EmulatorConfig:
        """Replace some configuration keys at run time, e.g. ``emu.configure(faults={"503":
        1.0})``."""
        return self.service.configure({**(changes or {}), **keys})

    def reset(self) -> None:
        """Forget requests: stats, request numbers (schedules start over) and quota windows."""
        self.service.reset()

    def stats(self) -> dict[str, Any]:
        """The JSON of ``GET /_emulator/stats``."""
        return self.service.stats.snapshot()

    def requests(self, model: str | None = None) -> list[dict[str, Any]]:
        """The recent requests (oldest first), optionally only those to ``model``."""
        return [r for r in self.stats()["recent"] if model is None or r["model"] == model]

    def bodies(self, model: str | None = None) -> list[dict[str, Any]]:
        """The recent request bodies (base64 image data replaced by ``<b64:N>``)."""
        return [r["body"] for r in self.requests(model)]


__all__ = ["JSON_TYPE", "MODEL_ROUTE", "Emulator"]
