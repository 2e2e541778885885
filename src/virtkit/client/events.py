"""Follow the daemon's event stream (GET /v1/events/stream, server-sent events).

``follow()`` yields events as they happen. If the connection drops (the daemon
restarts, say) it reconnects with the last sequence number it saw, so nothing
the daemon still holds is missed or repeated. Stdlib only (the CLI stays fast).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from virtkit.errors import DaemonError, VirtkitError, from_dict

RECONNECT_FOR_S = 30.0


def follow(socket_path: Path, since: int | None = None, domain: str | None = None,
           *, reconnect_for_s: float = RECONNECT_FOR_S) -> Iterator[dict[str, Any]]:  # fmt: skip
    """Events after ``since`` (None: from now on), forever."""
    last = since
    down_since: float | None = None
    while True:
        try:
            for ev in _stream(socket_path, last, domain):
                down_since = None
                last = int(ev["seq"])
                yield ev
        except (ConnectionError, OSError):
            pass
        now = time.monotonic()
        down_since = now if down_since is None else down_since
        if now - down_since > reconnect_for_s:
            raise DaemonError(
                f"lost the virtkit daemon's event stream at {socket_path} and could not "
                f"reconnect for {reconnect_for_s:g} s; is virtkitd running?"
            ) from None
        time.sleep(0.5)


def _stream(socket_path: Path, since: int | None, domain: str | None) -> Iterator[dict[str, Any]]:
    q = {k: v for k, v in (("since", since), ("domain", domain)) if v is not None}
    path = "/v1/events/stream" + (f"?{urlencode(q)}" if q else "")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(60)  # the daemon sends a keepalive every 15 s
        sock.connect(str(socket_path))
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n"
                     "Accept: text/event-stream\r\n\r\n".encode())  # fmt: skip
        reader = _Reader(sock)
        status, headers = reader.head()
        if status >= 400:
            body = reader.body(headers)
            try:
                raise from_dict(json.loads(body))
            except (ValueError, AttributeError):
                raise VirtkitError(f"daemon error {status}: {body[:300]!r}") from None
        data: list[str] = []
        for line in reader.lines(headers):
            if line == "":
                if data:
                    yield json.loads("\n".join(data))
                data = []
            elif line.startswith("data:"):
                data.append(line[5:].lstrip())
    finally:
        sock.close()


class _Reader:
    """Just enough HTTP/1.1 to read one (chunked) streaming answer, line by line."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the daemon closed the event stream")
        self.buf += chunk

    def head(self) -> tuple[int, dict[str, str]]:
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        raw, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = raw.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip()
                   for k, _, v in (ln.partition(":") for ln in lines[1:])}  # fmt: skip
        return int(lines[0].split(" ", 2)[1]), headers

    def body(self, headers: dict[str, str]) -> bytes:
        if headers.get("transfer-encoding", "").lower() == "chunked":
            return b"".join(self._chunks())
        n = int(headers.get("content-length", "0"))
        while len(self.buf) < n:
            self._fill()
        return self.buf[:n]

    def _chunks(self) -> Iterator[bytes]:
        while True:
            while b"\r\n" not in self.buf:
                self._fill()
            size_line, self.buf = self.buf.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            while len(self.buf) < size + 2:
                self._fill()
            data, self.buf = self.buf[:size], self.buf[size + 2 :]
            if size == 0:
                return
            yield data

    def lines(self, headers: dict[str, str]) -> Iterator[str]:
        pending = b""
        chunks = self._chunks() if headers.get("transfer-encoding", "").lower() == "chunked" \
            else self._raw()  # fmt: skip
        for chunk in chunks:
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for line in complete:
                yield line.rstrip(b"\r").decode(errors="replace")
        raise ConnectionError("the daemon ended the event stream")

    def _raw(self) -> Iterator[bytes]:
        while True:
            if self.buf:
                data, self.buf = self.buf, b""
                yield data
            self._fill()
