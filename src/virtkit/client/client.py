"""Python client for the virtkit API over its Unix socket.

Deliberately stdlib-only on the request path (a small HTTP/1.1 over AF_UNIX): the
CLI must answer in tens of milliseconds, and importing httpx alone costs
~250 ms of start-up on a small host. In session mode the first call starts the
per-user daemon if none answers.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote, urlencode

from virtkit.client.tls import TlsTarget, tls_target
from virtkit.errors import DaemonError, VirtkitError, from_dict
from virtkit.paths import Paths, socket_for_uri

DAEMON_START_TIMEOUT_S = 30.0


class _Response(NamedTuple):
    status: int
    body: bytes


class _UnixHTTP:
    """HTTP/1.1 over a Unix socket, keep-alive, just what the daemon speaks.

    Not http.client: importing it (and the email parser it drags in) costs ~40 ms
    of every CLI call, more than the request itself.
    """

    def __init__(self, path: str, timeout: float, tls: TlsTarget | None = None) -> None:
        if tls is not None:  # the same HTTP over TLS to a remote daemon (client/tls.py)
            from virtkit.client.tls import connect

            self.sock: socket.socket = connect(tls, timeout)
        else:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            try:
                self.sock.connect(path)
            except OSError:
                self.sock.close()
                raise
        self._buf = b""
        self.used = False

    def close(self) -> None:
        self.sock.close()

    def request(self, method: str, path: str, body: bytes | None) -> _Response:
        head = f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.sock.sendall(head.encode() + b"\r\n" + (body or b""))
        self.used = True
        while b"\r\n\r\n" not in self._buf:
            self._fill()
        raw_head, self._buf = self._buf.split(b"\r\n\r\n", 1)
        lines = raw_head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            data = self._chunked()
        else:
            data = self._exactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            self.close()
        return _Response(status, data)

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the daemon closed the connection")
        self._buf += chunk

    def _exactly(self, n: int) -> bytes:
        while len(self._buf) < n:
            self._fill()
        data, self._buf = self._buf[:n], self._buf[n:]
        return data

    def _chunked(self) -> bytes:
        out = []
        while True:
            while b"\r\n" not in self._buf:
                self._fill()
            size_line, self._buf = self._buf.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            out.append(self._exactly(size))
            self._exactly(2)
            if size == 0:
                return b"".join(out)


class Client:
    """Raises VirtkitError subclasses rebuilt from the daemon's error bodies."""

    def __init__(self, uri: str | None = None, *, autostart: bool = True,
                 timeout_s: float = 600.0) -> None:  # fmt: skip
        self.tls = tls_target(uri)
        if self.tls is not None:
            self.socket_path, self._local = Path(f"/nonexistent/{self.tls.host}"), None
        else:
            self.socket_path, self._local = socket_for_uri(uri)
        self.autostart_daemon = autostart and self._local is not None
        self.timeout_s = timeout_s
        self._conn: _UnixHTTP | None = None

    # -- transport -----------------------------------------------------------------------------

    def _connection(self) -> _UnixHTTP:
        if self._conn is None:
            try:
                conn = _UnixHTTP(str(self.socket_path), self.timeout_s, self.tls)
            except OSError as exc:
                if self.tls is not None and not isinstance(exc, ConnectionRefusedError):
                    raise DaemonError(f"TLS connection to {self.tls.host}:{self.tls.port} "
                                      f"failed: {exc}") from None  # fmt: skip
                if not isinstance(exc, FileNotFoundError | ConnectionRefusedError):
                    raise
                if self.tls is not None:
                    raise DaemonError(
                        f"cannot connect to virtkitd at {self.tls.host}:{self.tls.port} "
                        "(TLS): is it listening (virtkitd --listen-tls ADDR:PORT)?"
                    ) from None
                if not self.autostart_daemon or self._local is None:
                    raise DaemonError(
                        f"cannot connect to the virtkit daemon at {self.socket_path}: is "
                        "virtkitd running? start it with `virtkitd` (or `virtkit daemon`)"
                    ) from None
                start_daemon(self._local)
                conn = _UnixHTTP(str(self.socket_path), self.timeout_s)
            self._conn = conn
        return self._conn

    def request(self, method: str, path: str, body: Any = None,
                query: dict[str, Any] | None = None) -> Any:  # fmt: skip
        if query:
            q = {k: ("true" if v is True else "false" if v is False else v)
                 for k, v in query.items() if v is not None}  # fmt: skip
            path = f"{path}?{urlencode(q)}"
        payload = None if body is None else json.dumps(body).encode()
        for attempt in (0, 1):
            conn = self._connection()
            reused = conn.used
            try:
                resp = conn.request(method, path, payload)
                data = resp.body
                break
            except (ConnectionError, BrokenPipeError):
                self.close()
                if attempt or not reused:  # retry only a kept-alive connection gone stale
                    raise DaemonError(
                        "the virtkit daemon closed the connection; check its log"
                    ) from None
            except TimeoutError:
                self.close()
                raise DaemonError(
                    f"the virtkit daemon did not answer within {self.timeout_s:g} s"
                ) from None
            except OSError as exc:  # TLS: the server refused our certificate, or no cert
                if self.tls is None:
                    raise
                self.close()
                raise DaemonError(f"TLS connection to {self.tls.host}:{self.tls.port} failed: "
                                  f"{exc}; check the client certificate") from None  # fmt: skip
        if resp.status >= 400:
            try:
                raise from_dict(json.loads(data))
            except (ValueError, AttributeError):
                raise VirtkitError(f"daemon error {resp.status}: {data[:500]!r}") from None
        if resp.status == 204 or not data:
            return None
        return json.loads(data)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- API -----------------------------------------------------------------------------------

    def version(self) -> dict[str, Any]:
        return dict(self.request("GET", "/v1/version"))

    def list_domains(self, all_: bool = False) -> list[dict[str, Any]]:
        return list(self.request("GET", "/v1/domains", query={"all": all_}))

    def define_text(self, text: str, source: str) -> dict[str, Any]:
        return dict(self.request("POST", "/v1/domains", {"text": text, "source": source}))

    def define_config(self, config: dict[str, Any], source: str = "domain") -> dict[str, Any]:
        return dict(self.request("POST", "/v1/domains", {"config": config, "source": source}))

    def info(self, name: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/v1/domains/{quote(name, safe='')}"))

    def config(self, name: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/v1/domains/{quote(name, safe='')}/config"))

    def undefine(self, name: str) -> None:
        self.request("DELETE", f"/v1/domains/{quote(name, safe='')}")

    def set_autostart(self, name: str, enabled: bool) -> dict[str, Any]:
        return dict(self.request("PUT", f"/v1/domains/{quote(name, safe='')}/autostart",
                                 {"enabled": enabled}))  # fmt: skip

    def action(self, name: str, verb: str, **query: Any) -> dict[str, Any]:
        return dict(self.request("POST", f"/v1/domains/{quote(name, safe='')}/{verb}",
                                 query=query or None))  # fmt: skip

    def events(self, after: int = 0, domain: str | None = None,
               wait_s: float = 0.0) -> list[dict[str, Any]]:  # fmt: skip
        return list(
            self.request(
                "GET", "/v1/events", query={"after": after, "domain": domain, "wait_s": wait_s}
            )
        )

    # -- storage pools and volumes -------------------------------------------------------------

    def raw_request(self, method: str, path: str, body: bytes | None = None,
                    query: dict[str, Any] | None = None) -> bytes:  # fmt: skip
        """A request whose body and answer are bytes (volume content); errors as usual."""
        if query:
            path = f"{path}?{urlencode(query)}"
        try:
            resp = _raw_exchange(self._connection(), method, path, body)
        except (ConnectionError, BrokenPipeError, TimeoutError):
            self.close()
            raise DaemonError("the virtkit daemon closed the connection; check its log") from None
        if resp.status >= 400:
            try:
                raise from_dict(json.loads(resp.body))
            except (ValueError, AttributeError):
                raise VirtkitError(f"daemon error {resp.status}: {resp.body[:500]!r}") from None
        return resp.body

    def list_pools(self, all_: bool = False) -> list[dict[str, Any]]:
        return list(self.request("GET", "/v1/pools", query={"all": all_}))

    def define_pool(self, name: str, type_: str, target: str) -> dict[str, Any]:
        return dict(self.request("POST", "/v1/pools",
                                 {"name": name, "type": type_, "target": target}))  # fmt: skip

    def pool_info(self, pool: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/v1/pools/{quote(pool, safe='')}"))

    def pool_action(self, pool: str, verb: str) -> dict[str, Any]:
        return dict(self.request("POST", f"/v1/pools/{quote(pool, safe='')}/{verb}"))

    def pool_autostart(self, pool: str, enabled: bool) -> dict[str, Any]:
        return dict(self.request("PUT", f"/v1/pools/{quote(pool, safe='')}/autostart",
                                 {"enabled": enabled}))  # fmt: skip

    def undefine_pool(self, pool: str) -> None:
        self.request("DELETE", f"/v1/pools/{quote(pool, safe='')}")

    def _vol(self, pool: str, vol: str) -> str:
        return f"/v1/pools/{quote(pool, safe='')}/volumes/{quote(vol, safe='')}"

    def list_volumes(self, pool: str, details: bool = False) -> list[dict[str, Any]]:
        return list(self.request("GET", f"/v1/pools/{quote(pool, safe='')}/volumes",
                                 query={"details": details}))  # fmt: skip

    def create_volume(self, pool: str, spec: dict[str, Any]) -> dict[str, Any]:
        return dict(self.request("POST", f"/v1/pools/{quote(pool, safe='')}/volumes", spec))

    def volume_info(self, pool: str, vol: str) -> dict[str, Any]:
        return dict(self.request("GET", self._vol(pool, vol)))

    def lookup_volume(self, path: str) -> dict[str, Any]:
        return dict(self.request("GET", "/v1/volume-lookup", query={"path": path}))

    def delete_volume(self, pool: str, vol: str) -> None:
        self.request("DELETE", self._vol(pool, vol))

    def resize_volume(self, pool: str, vol: str, capacity: str, *, delta: bool = False,
                      shrink: bool = False) -> dict[str, Any]:  # fmt: skip
        body = {"capacity": capacity, "delta": delta, "shrink": shrink}
        return dict(self.request("POST", self._vol(pool, vol) + "/resize", body))

    def clone_volume(self, pool: str, vol: str, new: str) -> dict[str, Any]:
        return dict(self.request("POST", self._vol(pool, vol) + "/clone", {"name": new}))

    def read_volume(self, pool: str, vol: str, offset: int, length: int) -> bytes:
        return self.raw_request("GET", self._vol(pool, vol) + "/content",
                                query={"offset": offset, "length": length})  # fmt: skip

    def upload_volume(self, pool: str, vol: str, src: Any, size: int,
                      progress: Any = None, chunk: int = 1 << 20) -> dict[str, Any]:  # fmt: skip
        """Replace the volume's content with ``size`` bytes read from file object ``src``.

        ``progress(done)`` is called after each chunk. Aborted on any error.
        """
        up = self.request("POST", self._vol(pool, vol) + "/upload", {"size": size})
        uid = quote(up["id"], safe="")
        done = 0
        try:
            while done < size:
                data = src.read(min(chunk, size - done))
                if not data:
                    raise VirtkitError(f"the file ended after {done} of {size} bytes")
                if data.count(0) != len(data):  # zero chunks are not sent: they stay holes
                    self.raw_request("PUT", f"/v1/uploads/{uid}", data, {"offset": done})
                done += len(data)
                if progress is not None:
                    progress(done)
            return dict(self.request("POST", f"/v1/uploads/{uid}/commit"))
        except BaseException:
            with contextlib.suppress(VirtkitError, OSError):
                self.request("DELETE", f"/v1/uploads/{uid}")
            raise

    # -- clone, save/restore, block devices, undefine with storage (cli/domextra.py) ----------

    def _dom(self, name: str) -> str:
        return f"/v1/domains/{quote(name, safe='')}"

    def clone(self, original: str, name: str, files: list[str], *, auto_clone: bool = False,
              linked: bool = False) -> dict[str, Any]:  # fmt: skip
        body = {"name": name, "files": files, "auto_clone": auto_clone, "linked": linked}
        return dict(self.request("POST", f"{self._dom(original)}/clone", body))

    def save(self, name: str, file: str, paused: bool | None = None) -> dict[str, Any]:
        body = {"file": file, "paused": paused}
        return dict(self.request("POST", f"{self._dom(name)}/save", body))

    def restore(self, file: str, paused: bool | None = None) -> dict[str, Any]:
        return dict(self.request("POST", "/v1/restore", {"file": file, "paused": paused}))

    def managed_save(self, name: str, paused: bool | None = None) -> dict[str, Any]:
        return dict(self.request("POST", f"{self._dom(name)}/managedsave",
                                 query={"paused": paused}))  # fmt: skip

    def managed_save_remove(self, name: str) -> None:
        self.request("DELETE", f"{self._dom(name)}/managedsave")

    def blocks(self, name: str) -> list[dict[str, Any]]:
        return list(self.request("GET", f"{self._dom(name)}/blocks"))

    def block_info(self, name: str, target: str) -> dict[str, Any]:
        return dict(self.request("GET", f"{self._dom(name)}/blocks/{quote(target, safe='')}"))

    def block_resize(self, name: str, target: str, size_bytes: int,
                     shrink: bool = False) -> dict[str, Any]:  # fmt: skip
        path = f"{self._dom(name)}/blocks/{quote(target, safe='')}/resize"
        return dict(self.request("POST", path, {"size_bytes": size_bytes, "shrink": shrink}))

    def undefine_with(self, name: str, **options: Any) -> dict[str, Any]:
        """undefine with storage options (remove_all_storage, storage, managed_save, nvram)."""
        return dict(self.request("POST", f"{self._dom(name)}/undefine", options))

    # -- stats (cli/stats.py, cli/top.py) -------------------------------------------------------

    def stats(self, domains: list[str] | None = None, groups: list[str] | None = None,
              active: bool = False) -> dict[str, Any]:  # fmt: skip
        """One batched stats pass: {"timestamp": s, "domains": [{name, id, state, stats}]}."""
        q: list[tuple[str, str]] = [("domain", d) for d in domains or []]
        if groups:
            q.append(("groups", ",".join(groups)))
        if active:
            q.append(("active", "true"))
        path = "/v1/stats" + (f"?{urlencode(q)}" if q else "")
        return dict(self.request("GET", path))

    def metrics(self) -> str:
        """The daemon's Prometheus exposition text (GET /metrics)."""
        return self.raw_request("GET", "/metrics").decode()

    # -- hot plug, vCPUs, memory (cli/hotplug.py) ------------------------------------------------

    def attach_disk(self, name: str, source: str, target: str, **opts: Any) -> dict[str, Any]:
        body = {"source": source, "target": target, **opts}
        return dict(self.request("POST", f"{self._dom(name)}/disks", body))

    def detach_disk(self, name: str, target: str, **flags: Any) -> dict[str, Any]:
        path = f"{self._dom(name)}/disks/{quote(target, safe='')}"
        return dict(self.request("DELETE", path, query={k: v or None for k, v in flags.items()}))

    def attach_device(self, name: str, text: str, **flags: Any) -> dict[str, Any]:
        return dict(self.request("POST", f"{self._dom(name)}/devices", {"text": text, **flags}))

    def detach_device(self, name: str, text: str, **flags: Any) -> dict[str, Any]:
        body = {"text": text, **flags}
        return dict(self.request("POST", f"{self._dom(name)}/devices/detach", body))

    def attach_interface(self, name: str, type_: str, **opts: Any) -> dict[str, Any]:
        body = {"type": type_, **opts}
        return dict(self.request("POST", f"{self._dom(name)}/interfaces", body))

    def detach_interface(self, name: str, type_: str, **opts: Any) -> dict[str, Any]:
        path = f"{self._dom(name)}/interfaces/{quote(type_, safe='')}"
        return dict(self.request("DELETE", path, query={k: v or None for k, v in opts.items()}))

    def setvcpus(self, name: str, count: int, **flags: Any) -> dict[str, Any]:
        return dict(self.request("PUT", f"{self._dom(name)}/vcpus", {"count": count, **flags}))

    def vcpucount(self, name: str) -> dict[str, Any]:
        return dict(self.request("GET", f"{self._dom(name)}/vcpus"))

    def vcpuinfo(self, name: str) -> list[dict[str, Any]]:
        return list(self.request("GET", f"{self._dom(name)}/vcpus/info"))

    def setmem(self, name: str, size_kib: int, **flags: Any) -> dict[str, Any]:
        body = {"size_kib": size_kib, **flags}
        return dict(self.request("PUT", f"{self._dom(name)}/memory", body))

    def setmaxmem(self, name: str, size_kib: int, **flags: Any) -> dict[str, Any]:
        body = {"size_kib": size_kib, **flags}
        return dict(self.request("PUT", f"{self._dom(name)}/memory/max", body))

    def dommemstat(self, name: str, period_s: int | None = None) -> dict[str, int]:
        return dict(self.request("GET", f"{self._dom(name)}/memory/stats",
                                 query={"period_s": period_s}))  # fmt: skip

    # -- host features: nodeinfo, NUMA, KSM, node devices, pinning (cli/hostfeat.py) ----------

    def nodeinfo(self) -> dict[str, Any]:
        return dict(self.request("GET", "/v1/host/nodeinfo"))

    def capabilities(self) -> dict[str, Any]:
        return dict(self.request("GET", "/v1/host/capabilities"))

    def ksm(self, **changes: int) -> dict[str, Any]:
        if changes:
            return dict(self.request("PUT", "/v1/host/ksm", changes))
        return dict(self.request("GET", "/v1/host/ksm"))

    def nodedev_list(self, cap: str | None = None) -> list[dict[str, Any]]:
        return list(self.request("GET", "/v1/host/nodedevs", query={"cap": cap}))

    def nodedev(self, dev: str, action: str | None = None, **body: Any) -> dict[str, Any]:
        path = f"/v1/host/nodedevs/{quote(dev, safe='')}"
        if action is None:
            return dict(self.request("GET", path))
        if action == "sriov":
            return dict(self.request("PUT", f"{path}/sriov", body))
        return dict(self.request("POST", f"{path}/{action}"))

    def vcpupin(self, name: str, vcpu: int | None = None, cpulist: str | None = None,
                **flags: Any) -> dict[str, Any]:  # fmt: skip
        if cpulist is None:
            query = {"vcpu": vcpu, **{k: v or None for k, v in flags.items()}}
            return dict(self.request("GET", f"{self._dom(name)}/vcpupin", query=query))
        body = {"vcpu": vcpu, "cpulist": cpulist, **flags}
        return dict(self.request("PUT", f"{self._dom(name)}/vcpupin", body))

    def emulatorpin(self, name: str, cpulist: str | None = None, **flags: Any) -> dict[str, Any]:
        if cpulist is None:
            query = {k: v or None for k, v in flags.items()}
            return dict(self.request("GET", f"{self._dom(name)}/emulatorpin", query=query))
        body = {"cpulist": cpulist, **flags}
        return dict(self.request("PUT", f"{self._dom(name)}/emulatorpin", body))

    def numatune(self, name: str, nodeset: str | None = None, mode: str | None = None,
                 **flags: Any) -> dict[str, Any]:  # fmt: skip
        if nodeset is None and mode is None:
            query = {"config": flags.get("config") or None}
            return dict(self.request("GET", f"{self._dom(name)}/numatune", query=query))
        body = {k: v for k, v in (("nodeset", nodeset), ("mode", mode)) if v is not None}
        return dict(self.request("PUT", f"{self._dom(name)}/numatune", body | flags))

    # -- managed networks, interfaces, port forwards (cli/network.py) -------------------------

    def _net(self, net: str) -> str:
        return f"/v1/networks/{quote(net, safe='')}"

    def list_networks(self, all_: bool = False) -> list[dict[str, Any]]:
        return list(self.request("GET", "/v1/networks", query={"all": all_}))

    def define_network(self, *, text: str | None = None, config: dict[str, Any] | None = None,
                       source: str = "network", start: bool = False) -> dict[str, Any]:  # fmt: skip
        body = {"text": text, "config": config, "source": source, "start": start}
        return dict(self.request("POST", "/v1/networks", body))

    def network_info(self, net: str) -> dict[str, Any]:
        return dict(self.request("GET", self._net(net)))

    def network_config(self, net: str) -> dict[str, Any]:
        return dict(self.request("GET", f"{self._net(net)}/config"))

    def network_xml(self, net: str) -> str:
        return str(self.request("GET", f"{self._net(net)}/xml")["xml"])

    def network_action(self, net: str, verb: str) -> dict[str, Any]:
        return dict(self.request("POST", f"{self._net(net)}/{verb}"))

    def network_autostart(self, net: str, enabled: bool) -> dict[str, Any]:
        return dict(self.request("PUT", f"{self._net(net)}/autostart", {"enabled": enabled}))

    def undefine_network(self, net: str) -> None:
        self.request("DELETE", self._net(net))

    def network_leases(self, net: str, mac: str | None = None) -> list[dict[str, Any]]:
        return list(self.request("GET", f"{self._net(net)}/leases", query={"mac": mac}))

    def interfaces(self, name: str) -> list[dict[str, Any]]:
        return list(self.request("GET", f"{self._dom(name)}/interfaces"))

    def interface_addresses(self, name: str, source: str = "lease") -> list[dict[str, Any]]:
        return list(self.request("GET", f"{self._dom(name)}/interfaces/addresses",
                                 query={"source": source}))  # fmt: skip

    def interface_stats(self, name: str, interface: str | None = None) -> list[dict[str, Any]]:
        return list(self.request("GET", f"{self._dom(name)}/interfaces/stats",
                                 query={"interface": interface}))  # fmt: skip

    def port_forward(self, name: str, **body: Any) -> dict[str, Any]:
        return dict(self.request("POST", f"{self._dom(name)}/port-forwards", body))

    # -- web UI, graphical console (cli/ui.py) ----------------------------------------------------

    def ui_info(self) -> dict[str, Any]:
        return dict(self.request("GET", "/v1/ui"))

    def login_link(self, next_path: str = "/ui/") -> dict[str, Any]:
        """A one-time URL that logs a browser into the web UI (and lands on next_path)."""
        return dict(self.request("POST", "/v1/ui/login-link", {"next": next_path}))

    def vncdisplay(self, name: str) -> dict[str, Any]:
        return dict(self.request("GET", f"{self._dom(name)}/vncdisplay"))

    def install_argv(self, argv: list[str], dry_run: bool = False) -> dict[str, Any]:
        return dict(self.request("POST", "/v1/install/argv", {"argv": argv, "dry_run": dry_run}))

    # -- migration (cli/migrate.py) -------------------------------------------------------------

    def migrate(self, name: str, dest_uri: str, **opts: Any) -> dict[str, Any]:
        """Start migrating ``name`` to the daemon at ``dest_uri``; poll ``job`` for progress."""
        body = {"dest_uri": dest_uri, **opts}
        return dict(self.request("POST", f"{self._dom(name)}/migrate", body))

    def job(self, name: str) -> dict[str, Any]:
        """{"current": JobInfo | None, "completed": JobInfo | None}"""
        return dict(self.request("GET", f"{self._dom(name)}/job"))

    def job_abort(self, name: str) -> dict[str, Any]:
        return dict(self.request("DELETE", f"{self._dom(name)}/job"))

    def migration_params(self, name: str) -> dict[str, Any]:
        return dict(self.request("GET", f"{self._dom(name)}/migration-params"))

    def set_migration_params(self, name: str, **params: Any) -> dict[str, Any]:
        return dict(self.request("PUT", f"{self._dom(name)}/migration-params", params))


def _raw_exchange(conn: _UnixHTTP, method: str, path: str, body: bytes | None) -> _Response:
    """One request with a binary body/answer, read straight into one buffer (no re-copies)."""
    head = f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n"
    if body is not None:
        head += f"Content-Type: application/octet-stream\r\nContent-Length: {len(body)}\r\n"
    conn.sock.sendall(head.encode() + b"\r\n")
    if body:
        conn.sock.sendall(body)
    conn.used = True
    while b"\r\n\r\n" not in conn._buf:
        conn._fill()
    raw_head, conn._buf = conn._buf.split(b"\r\n\r\n", 1)
    lines = raw_head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    if headers.get("transfer-encoding", "").lower() == "chunked":
        data = conn._chunked()
    else:
        n = int(headers.get("content-length", "0"))
        buf = bytearray(n)
        have = min(n, len(conn._buf))
        buf[:have], conn._buf = conn._buf[:have], conn._buf[have:]
        view = memoryview(buf)[have:]
        while view:
            got = conn.sock.recv_into(view)
            if not got:
                raise ConnectionError("the daemon closed the connection")
            view = view[got:]
        data = bytes(buf)
    if headers.get("connection", "").lower() == "close":
        conn.close()
    return _Response(status, data)


def start_daemon(paths: Paths) -> None:
    """Start a daemon for ``paths`` in the background and wait until it answers."""
    paths.run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock_fd = os.open(paths.run_dir / "autostart.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)  # one CLI starts it; the others wait for it
        if _answers(paths.socket):
            return
        paths.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)  # owner only
        log_dir = paths.state_dir / "log"
        log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(log_dir / "virtkitd.stderr", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with open(fd, "ab") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "virtkit.daemon", "--mode", paths.mode],
                stdin=subprocess.DEVNULL, stdout=err, stderr=err, start_new_session=True,
                close_fds=True, cwd="/",
            )  # fmt: skip
        deadline = time.monotonic() + DAEMON_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if _answers(paths.socket):
                return
            if proc.poll() is not None:
                tail = (log_dir / "virtkitd.stderr").read_text(errors="replace")[-1500:]
                raise DaemonError(f"virtkitd exited with status {proc.returncode}:\n{tail}")
            time.sleep(0.02)
        raise DaemonError(f"virtkitd did not come up within {DAEMON_START_TIMEOUT_S:g} s; "
                          f"see {log_dir / 'virtkitd.log'}")  # fmt: skip
    finally:
        os.close(lock_fd)


def _answers(path: Path) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        s.close()
