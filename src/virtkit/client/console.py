"""Serial console client: the terminal <-> the daemon's console websocket.

Ctrl+] leaves. With a terminal, stdin is put in raw mode (restored on exit);
without one (scripts, tests), stdin is copied as it comes and its end detaches
after a short drain of the guest's output.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import sys
import termios
import threading
import tty
from pathlib import Path
from urllib.parse import quote

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, unix_connect

from virtkit.errors import StateError, VirtkitError, from_dict

ESCAPE = b"\x1d"  # Ctrl+]
EOF_DRAIN_S = 1.0


def connect(socket_path: Path, name: str, force: bool) -> ClientConnection:
    uri = f"ws://localhost/v1/domains/{quote(name, safe='')}/console"
    if force:
        uri += "?force=true"
    ws = unix_connect(str(socket_path), uri, max_size=1 << 20, compression=None)
    first = ws.recv(timeout=30)
    reply = json.loads(first)
    if not reply.get("ok"):
        ws.close()
        raise from_dict(reply)
    return ws


def run(ws: ClientConnection, name: str) -> int:
    """Copy until Ctrl+], the guest's end, or a takeover. Returns an exit code."""
    return 1 if session(ws, name) == "taken" else 0


def session(ws: ClientConnection, name: str) -> str:
    """Copy until the user leaves ('detached'), the guest side ends ('closed'), or
    another client takes the console over ('taken')."""
    stdout = sys.stdout.buffer
    fd = sys.stdin.fileno()
    is_tty = os.isatty(fd)
    print(f"Connected to domain '{name}'\r\nEscape character is ^] (Ctrl + ])\r", flush=True)
    done = threading.Event()
    taken: list[bool] = []
    left = False

    def pump_out() -> None:
        try:
            for msg in ws:
                data = msg if isinstance(msg, bytes) else msg.encode()
                stdout.write(data)
                stdout.flush()
        except ConnectionClosed as exc:
            if exc.rcvd is not None and exc.rcvd.code == 4409:
                taken.append(True)
        except OSError:  # our stdout went away (e.g. piped into `head`)
            pass
        finally:
            done.set()

    reader = threading.Thread(target=pump_out, daemon=True)
    reader.start()
    saved = termios.tcgetattr(fd) if is_tty else None
    try:
        if is_tty:
            tty.setraw(fd)
        while not done.is_set():
            ready, _, _ = select.select([fd], [], [], 0.2)
            if not ready:
                continue
            data = os.read(fd, 4096)
            if not data:
                done.wait(EOF_DRAIN_S)
                left = not done.is_set()
                break
            if ESCAPE in data:
                before = data.split(ESCAPE, 1)[0]
                if before:
                    ws.send(before)
                left = True
                break
            ws.send(data)
    except (ConnectionClosed, OSError):
        pass
    finally:
        if saved is not None:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        with contextlib.suppress(Exception):
            ws.close()
        reader.join(2)
    print("", flush=True)
    if taken:
        print("Disconnected: another client took over the console (--force)", file=sys.stderr)
        return "taken"
    return "detached" if left else "closed"


__all__ = ["StateError", "VirtkitError", "connect", "run"]
