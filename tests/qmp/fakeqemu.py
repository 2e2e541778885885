"""A fake QEMU for protocol-fault tests: speaks (or mangles) QMP on the monitor socket.

Usage (as a domain's emulator, through a wrapper): fakeqemu.py MODE [qemu args...]
Modes:
  ok           greets, answers commands, exits on quit/SIGTERM
  nogreeting   accepts the connection and never says anything
  garbage      sends bytes that are not JSON instead of a greeting
  stall        behaves until the guest is started (cont), then never answers again
  slowgreet    waits 3 s before greeting
  flood        after the greeting, sends 64 MiB without a newline
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from typing import Any


def arg_after(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


CAPS = {
    "query-version": {"qemu": {"major": 7, "minor": 2, "micro": 0}, "package": "fake"},
    "query-machines": [{"name": "pc-q35-7.2", "alias": "q35", "cpu-max": 288}],
    "query-cpu-definitions": [{"name": "qemu64"}],
    "qom-list-types": [{"name": "virtio-blk-pci"}, {"name": "isa-serial"}],
    "query-kvm": {"present": False, "enabled": False},
}


def messages(conn: socket.socket) -> Iterator[dict[str, Any]]:
    """QMP is a JSON stream: clients need not end messages with a newline."""
    dec = json.JSONDecoder()
    buf = ""
    while True:
        data = conn.recv(65536)
        if not data:
            return
        buf += data.decode(errors="replace")
        while True:
            buf = buf.lstrip()
            if not buf:
                break
            try:
                msg, end = dec.raw_decode(buf)
            except ValueError:
                break
            buf = buf[end:]
            yield msg


def serve_caps(fd: int) -> None:
    """Answer the capability probe (-machine none, monitor on an inherited fd)."""
    conn = socket.socket(fileno=fd)
    greeting = {"QMP": {"version": CAPS["query-version"], "capabilities": []}}
    conn.sendall(json.dumps(greeting).encode() + b"\r\n")
    for msg in messages(conn):
        ret = CAPS.get(msg.get("execute"), {})
        conn.sendall(json.dumps({"return": ret, "id": msg.get("id")}).encode() + b"\r\n")


def main() -> None:
    mode, argv = sys.argv[1], sys.argv[2:]
    if "-machine" in argv and arg_after(argv, "-machine") == "none":
        chardev = arg_after(argv, "-chardev")
        serve_caps(int(chardev.split("fd=")[1].split(",")[0]))
        return
    pidfile = arg_after(argv, "-pidfile")
    qmp = ""
    for a in argv:
        if a.startswith("socket,id=monitor,"):
            qmp = dict(p.split("=", 1) for p in a.split(",")[1:] if "=" in p)["path"]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with open(pidfile, "w") as f:
        f.write(f"{os.getpid()}\n")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(qmp)
    srv.listen(4)
    stalled = False
    while True:
        conn, _ = srv.accept()
        if mode == "nogreeting":
            time.sleep(3600)
        if mode == "garbage":
            conn.sendall(b"\x00\xffthis is not QMP\r\n{{{\n")
            time.sleep(3600)
        if mode == "slowgreet":
            time.sleep(3)
        greeting = {
            "QMP": {
                "version": {"qemu": {"major": 7, "minor": 2, "micro": 0}, "package": "fake"},
                "capabilities": [],
            }
        }
        conn.sendall(json.dumps(greeting).encode() + b"\r\n")
        if mode == "flood":
            chunk = b"x" * (1 << 20)
            try:
                for _ in range(64):
                    conn.sendall(chunk)
            except OSError:
                pass
        running = False
        for msg in messages(conn):
            if stalled:
                continue
            cmd, mid = msg.get("execute"), msg.get("id")
            ret: object = {}
            if cmd == "query-status":
                ret = {"running": running, "status": "running" if running else "prelaunch"}
            elif cmd == "cont":
                running = True
                if mode == "stall":
                    stalled = True
            elif cmd == "stop":
                running = False
            elif cmd == "quit":
                conn.sendall(json.dumps({"return": {}, "id": mid}).encode() + b"\r\n")
                sys.exit(0)
            conn.sendall(json.dumps({"return": ret, "id": mid}).encode() + b"\r\n")


if __name__ == "__main__":
    main()
