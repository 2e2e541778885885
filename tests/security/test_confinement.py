"""A running guest's QEMU in system mode: unprivileged, no capabilities, seccomp, cgroup,
no inherited descriptors, clean environment, private sockets (real QEMU, TCG)."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import stat
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import Daemon, qemu_pids, tiny_yaml

pytestmark = pytest.mark.qemu

BOOT = "VIRTKIT-TINY-BOOT-OK"
SECRET = "Zq7pw8xy"


def status(pid: int) -> dict[str, str]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("system-mode confinement needs root")
    try:
        pwd.getpwnam("virtkit-qemu")
    except KeyError:
        pytest.skip("the virtkit-qemu user is missing: run scripts/setup")


def test_qemu_runs_confined(daemon: Daemon, tiny: object, tmp_path: Path) -> None:
    needs_root()
    img = tmp_path / "data.qcow2"  # under pytest's 0700 tmp dirs: reached through ACLs
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(img), "16M"], check=True)
    f = tmp_path / "c.yaml"
    vnc = f"graphics:\n  type: vnc\n  password: {SECRET}\n"
    f.write_text(tiny_yaml(tiny, "conf", extra=f"accel: tcg\ndisks:\n  - path: {img}\n{vnc}"))
    daemon.cli("define", str(f))
    daemon.cli("start", "conf")
    daemon.wait_console("conf", BOOT)
    [pid] = qemu_pids(str(daemon.run_dir))
    st = status(pid)
    qemu_uid = int(st["Uid"].split()[0])  # its own uid, from VIRTKIT_QEMU_UIDS
    assert 2000000000 <= qemu_uid <= 2000065535
    assert st["Uid"].split() == [str(qemu_uid)] * 4
    assert st["Gid"].split() == [str(qemu_uid)] * 4  # and its own group
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert st[cap] == "0000000000000000", cap
    assert st["Seccomp"] == "2"
    assert st["NoNewPrivs"] == "1"
    assert b"-sandbox" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[1:]

    # a clean environment and nothing of the daemon's inherited
    env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert sorted(e for e in env if e) == [b"LC_ALL=C", b"PATH=/usr/sbin:/usr/bin:/sbin:/bin"]
    targets = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            targets.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
    assert os.readlink(f"/proc/{pid}/fd/0") == "/dev/null"
    state = str(daemon.state_dir)
    leaked = [t for t in targets if t.startswith(state) and not t.endswith(".log")]
    assert not leaked, leaked
    assert not any("virtkit.db" in t or "virtkitd.lock" in t for t in targets)

    # its sockets: 0600 in a 0700 directory owned by the QEMU user; its image is its own
    run_dir = next(p for p in (daemon.run_dir / "qemu").iterdir())
    rst = run_dir.stat()
    assert stat.S_IMODE(rst.st_mode) == 0o700 and rst.st_uid == qemu_uid
    for sock in ("qmp.sock", "serial.sock"):
        sst = (run_dir / sock).stat()
        assert stat.S_IMODE(sst.st_mode) == 0o600 and sst.st_uid == qemu_uid, sock
    assert img.stat().st_uid == 0  # never chowned: an ACL entry for this QEMU's uid only
    from virtkit.runtime import access

    assert access.user_perm(str(img), qemu_uid) == access.R | access.W
    assert stat.S_IMODE(tmp_path.stat().st_mode) & 0o007 == 0  # nothing made world-open

    # the cgroup (when cgroup v2 is writable here), reported in dominfo either way
    cg = Path(f"/proc/{pid}/cgroup").read_text()
    info = daemon.cli("dominfo", "conf").stdout
    assert f"Confined:       uid {qemu_uid}" in info, info
    from virtkit.runtime.cgroup import cgroup2_mount

    root = cgroup2_mount()
    scope: Path | None = None
    if root is not None and os.access(root, os.W_OK):
        # NAME-HASH.scope: the hash names the daemon (two daemons may run one domain name)
        [line] = [ln for ln in cg.splitlines() if ln.startswith("0::")]
        assert re.fullmatch(r"0::/virtkit\.slice/conf-[0-9a-f]{8}\.scope", line), cg
        scope = root / line[len("0::/") :]
        assert str(pid) in (scope / "cgroup.procs").read_text().split()
        if (scope / "memory.max").exists():
            assert int((scope / "memory.max").read_text()) == (256 + 512) << 20
            assert (scope / "pids.max").read_text().strip() == "1024"
    # memory and pids limited on v2, or (hybrid hosts, like CI's) on cgroup v1 under the
    # daemon's own v1 cgroup (the daemon is our child: the same one as ours)
    from virtkit.runtime.cgroup import detect

    layout = detect()
    v2_limited = {c for c in ("memory", "pids")
                  if scope is not None and (scope / f"{c}.max").exists()}  # fmt: skip
    scopes = []
    for ctl, file in (("memory", "memory.limit_in_bytes"), ("pids", "pids.max")):
        if ctl in v2_limited or ctl not in layout.v1:
            continue
        [v1line] = [ln for ln in cg.splitlines() if ln.split(":")[1] == ctl]
        assert re.search(r"/virtkit\.slice/conf-[0-9a-f]{8}\.scope$", v1line), cg
        v1scope = layout.v1[ctl] / "virtkit.slice" / v1line.rsplit("/", 1)[1]
        want = str((256 + 512) << 20) if ctl == "memory" else "1024"
        assert (v1scope / file).read_text().strip() == want, (v1scope, file)
        assert str(pid) in (v1scope / "cgroup.procs").read_text().split()
        assert f"{ctl}:{file}={want}" in info, info
        scopes.append(v1scope)
    if not layout.v1 and not v2_limited:
        assert "Cgroup limits:  none" in info, info

    # raw monitor access (admin) works and taints the domain; secrets stay out of the logs
    r = daemon.cli("qemu-monitor-command", "conf", '{"execute": "query-status"}')
    assert '"running"' in r.stdout
    r = daemon.cli("qemu-monitor-command", "conf", "--hmp", "info", "status")
    assert "running" in r.stdout
    assert "Tainted:        custom-monitor" in daemon.cli("dominfo", "conf").stdout
    change = {"execute": "change-vnc-password", "arguments": {"password": SECRET}}
    daemon.cli("qemu-monitor-command", "conf", json.dumps(change))
    logs = [daemon.base / "daemon.stderr", *(daemon.state_dir / "log").iterdir()]
    for log in logs:
        assert SECRET not in log.read_text(errors="replace"), log
    assert SECRET not in daemon.cli("dumpconfig", "conf").stdout
    assert SECRET not in daemon.cli("dumpxml", "conf").stdout
    assert SECRET not in daemon.cli("event", "--all").stdout

    daemon.cli("destroy", "conf")
    assert not qemu_pids(str(daemon.run_dir))
    assert access.user_perm(str(img), qemu_uid) == 0  # given back when it stopped
    assert not Path(f"/run/virtkit-uids/{qemu_uid}").exists()
    if scope is not None:
        assert not scope.exists()
    for v1scope in scopes:  # removed with QEMU's exit (retried a second later)
        for _ in range(30):
            if not v1scope.exists():
                break
            time.sleep(0.1)
        assert not v1scope.exists(), v1scope
