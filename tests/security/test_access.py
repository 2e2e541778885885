"""API access: socket permissions, the read-only socket, TLS 1.3 with client
certificates (refusing others), and what the remote role may not do."""

from __future__ import annotations

import contextlib
import grp
import json
import os
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Daemon


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def vk(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "virtkit.cli", *argv], capture_output=True,
                          text=True, env=env, timeout=60)  # fmt: skip


@pytest.fixture(scope="module")
def pki() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="vkpki"))
    for argv in (("init",), ("server", "--host", "127.0.0.1", "--host", "localhost"),
                 ("client", "--name", "alice", "--out", str(base / "alice"))):  # fmt: skip
        r = vk("pki", argv[0], "--dir", str(base / "ca"), *argv[1:])
        assert r.returncode == 0, r.stderr
    other = base / "other"  # a CA the daemon does not know, and a client it signed
    assert vk("pki", "init", "--dir", str(other)).returncode == 0
    assert vk("pki", "client", "--dir", str(other), "--name", "mallory",
              "--out", str(base / "mallory")).returncode == 0  # fmt: skip
    yield base
    subprocess.run(["rm", "-rf", str(base)], check=False)


@pytest.fixture(scope="module")
def tls_daemon(pki: Path) -> Iterator[tuple[Daemon, int]]:
    base = Path(tempfile.mkdtemp(prefix="vk", dir="/tmp"))
    d = Daemon(base)
    port = free_port()
    d.env.update(VIRTKIT_LISTEN_TLS=f"127.0.0.1:{port}", VIRTKIT_TLS_DIR=str(pki / "ca"))
    d.start()
    try:
        yield d, port
    finally:
        d.cleanup()
        subprocess.run(["rm", "-rf", str(base)], check=False)


def test_pki_files(pki: Path) -> None:
    for f in ("ca-key.pem", "server-key.pem"):
        assert stat.S_IMODE((pki / "ca" / f).stat().st_mode) == 0o600
    assert stat.S_IMODE((pki / "alice" / "client-key.pem").stat().st_mode) == 0o600
    assert (pki / "alice" / "ca.pem").read_bytes() == (pki / "ca" / "ca.pem").read_bytes()
    r = vk("pki", "init", "--dir", str(pki / "ca"))
    assert r.returncode == 2 and "already exists" in r.stderr


def test_socket_permissions(tls_daemon: tuple[Daemon, int]) -> None:
    d, _ = tls_daemon
    st = d.socket.stat()
    ro = (d.run_dir / "virtkitd-ro.sock").stat()
    if os.geteuid() == 0:  # system mode
        assert stat.S_IMODE(st.st_mode) == 0o660
        with contextlib.suppress(KeyError):
            assert st.st_gid == grp.getgrnam("virtkit").gr_gid
        assert stat.S_IMODE(ro.st_mode) == 0o666
    else:
        assert stat.S_IMODE(st.st_mode) == 0o600 and stat.S_IMODE(ro.st_mode) == 0o600


def _unix(path: Path, method: str, url: str, body: dict[str, object] | None = None) -> int:
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(path))
    data = json.dumps(body).encode() if body is not None else b""
    s.sendall(f"{method} {url} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(data)}\r\n"
              "Connection: close\r\n\r\n".encode() + data)  # fmt: skip
    resp = b""
    while chunk := s.recv(65536):
        resp += chunk
    s.close()
    return int(resp.split(b" ", 2)[1])


def test_read_only_socket(tls_daemon: tuple[Daemon, int]) -> None:
    d, _ = tls_daemon
    ro = d.run_dir / "virtkitd-ro.sock"
    assert _unix(ro, "GET", "/v1/domains?all=true") == 200
    assert _unix(ro, "GET", "/v1/events?after=0") == 200
    assert _unix(ro, "POST", "/v1/domains", {"config": {"name": "x"}}) == 403
    assert _unix(ro, "DELETE", "/v1/domains/x") == 403
    r = d.cli("-c", f"unix://{ro}", "list", "--all")
    assert r.returncode == 0
    r = d.cli("-c", f"unix://{ro}", "autostart", "x", check=False)
    assert r.returncode == 2 and "read-only socket" in r.stderr
    assert "x" not in d.cli("list", "--all").stdout.split()


def test_tls_with_client_certificate(tls_daemon: tuple[Daemon, int], pki: Path,
                                     tmp_path: Path) -> None:  # fmt: skip
    d, port = tls_daemon
    uri = f"virtkit+tls://127.0.0.1:{port}/system?pki={pki / 'alice'}"
    r = d.cli("-c", uri, "list", "--all")
    assert r.returncode == 0, r.stderr
    # the remote role: disk paths outside every pool are refused, nothing defined
    img = tmp_path / "outside.img"
    img.write_bytes(b"\0" * 4096)
    f = tmp_path / "r.yaml"
    f.write_text(f"name: remote1\nmemory_mib: 64\ndisks:\n  - path: {img}\n    format: raw\n")
    r = d.cli("-c", uri, "define", str(f), check=False)
    assert r.returncode == 2 and "outside every storage pool" in r.stderr, r.stderr
    f.write_text("name: remote2\nmemory_mib: 64\nqemu_args: ['-device', 'pvpanic']\n")
    r = d.cli("-c", uri, "define", str(f), check=False)
    assert r.returncode == 2 and "administrator" in r.stderr, r.stderr
    f.write_text("name: remote3\nmemory_mib: 64\n")
    d.cli("-c", uri, "define", str(f))  # no files: fine remotely
    r = d.cli("-c", uri, "qemu-monitor-command", "remote3", '{"execute":"query-status"}',
              check=False)  # fmt: skip
    assert r.returncode == 2 and "administrator" in r.stderr, r.stderr
    from virtkit.client.client import Client
    from virtkit.errors import ForbiddenError

    c = Client(uri)
    try:
        refused = [
            ("POST", "/v1/pools", {"name": "etc", "type": "dir", "target": "/etc"}),
            ("POST", "/v1/domains", {"config": {"name": "em", "emulator": "/bin/sh"}}),
            ("POST", "/v1/domains/remote3/save", {"file": "/etc/cron.d/x"}),
            ("POST", "/v1/restore", {"file": "/etc/shadow"}),
            ("POST", "/v1/domains/remote3/clone", {"name": "cl", "files": ["/etc/x.img"]}),
        ]
        for method, url, body in refused:
            with pytest.raises(ForbiddenError):
                c.request(method, url, body)
    finally:
        c.close()
    out = d.cli("list", "--all").stdout.split()
    assert "remote3" in out and "remote1" not in out and "remote2" not in out
    assert "em" not in out and "cl" not in out
    assert not Path("/etc/cron.d/x").exists()


def _handshake(port: int, cert_dir: Path | None, ca: Path,
               version: ssl.TLSVersion | None = None) -> int:  # fmt: skip
    """Connect and ask GET /v1/version; the HTTP status, or 0 when the server refused."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=str(ca))
    if version is not None:
        ctx.minimum_version = ctx.maximum_version = version
    if cert_dir is not None:
        ctx.load_cert_chain(cert_dir / "client.pem", cert_dir / "client-key.pem")
    try:
        with socket.create_connection(("127.0.0.1", port), 10) as raw, \
                ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:  # fmt: skip
            s.sendall(b"GET /v1/version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = s.recv(65536)
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return 0
    return int(data.split(b" ", 2)[1]) if data else 0


def test_tls_refuses_others(tls_daemon: tuple[Daemon, int], pki: Path) -> None:
    _, port = tls_daemon
    ca = pki / "ca" / "ca.pem"
    assert _handshake(port, pki / "alice", ca) == 200
    assert _handshake(port, None, ca) == 0  # no certificate
    assert _handshake(port, pki / "mallory", ca) == 0  # signed by another CA
    assert _handshake(port, pki / "alice", ca, ssl.TLSVersion.TLSv1_2) == 0  # TLS 1.3 only
    r = vk("-c", f"virtkit+tls://127.0.0.1:{port}/system?pki={pki / 'mallory'}", "list")
    assert r.returncode == 6 and "TLS" in r.stderr and "Traceback" not in r.stderr
