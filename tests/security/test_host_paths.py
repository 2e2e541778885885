"""Host files lent to QEMU, never taken (issue 12, finding 1), with real daemons and QEMU.

Dummy files stand in for host files: nothing under the real /etc or /dev is changed
(they are only stat()ed, before and after, to prove it). Block devices are loop
devices made by the test.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Daemon, qemu_pids, tiny_yaml
from tests.faults.test_crash_points import crash_at
from virtkit.runtime import access

pytestmark = pytest.mark.qemu

BOOT = "VIRTKIT-TINY-BOOT-OK"


def needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("system-mode confinement needs root")


def state_of(p: Path) -> tuple[int, int, int, bytes | None]:
    st = os.stat(p)
    try:
        acl: bytes | None = os.getxattr(p, access.XATTR)
    except OSError:
        acl = None
    return st.st_uid, st.st_gid, st.st_mode, acl


def audit(paths: list[Path], mine: Path) -> dict[Path, object]:
    """Owner, group, mode and ACL of every path and every directory above it. Exact for
    the test's own files (under ``mine``, and devices); for directories other tests share
    (/root above the tiny kernel, /tmp) the entries of other running guests' QEMUs (which
    come and go with them: tests run in parallel) are left out, and so is the mask."""
    every: set[Path] = set()
    for p in paths:
        every.add(p)
        every.update(p.parents)
    out: dict[Path, object] = {}
    for p in sorted(every):
        if not p.exists():
            continue
        uid, gid, mode, acl = state_of(p)
        if p.is_relative_to(mine) or str(p).startswith("/dev/"):
            out[p] = (uid, gid, mode, acl)
            continue
        entries = access._parse(acl) if acl else []
        kept = [e for e in entries if e[0] != access.MASK
                and not (e[0] == access.USER and 2000000000 <= e[2] <= 2000065535)]  # fmt: skip
        out[p] = (uid, gid, mode & ~0o070, kept)
    return out


def no_entries_for(uids: set[int], paths: list[Path]) -> None:
    for p in paths:
        for d in [p, *p.parents]:
            for u in uids:
                assert access.user_perm(str(d), u) == 0, (d, u)


@contextlib.contextmanager
def loop_device(tmp_path: Path, name: str, size_mib: int = 8) -> Iterator[Path]:
    backing = tmp_path / f"{name}.loopfile"
    with open(backing, "wb") as f:
        f.truncate(size_mib << 20)
    r = subprocess.run(["losetup", "--find", "--show", str(backing)],
                       capture_output=True, text=True)  # fmt: skip
    if r.returncode != 0:
        pytest.skip(f"no loop device here: {r.stderr.strip()}")
    dev = Path(r.stdout.strip())
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "-d", str(dev)], check=False)


def qcow2(path: Path, size: str = "16M") -> Path:
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), size], check=True)
    return path


def define(daemon: Daemon, tmp_path: Path, tiny: object, name: str, disks: str,
           check: bool = True) -> subprocess.CompletedProcess[str]:  # fmt: skip
    f = tmp_path / f"{name}.yaml"
    f.write_text(tiny_yaml(tiny, name, extra=f"accel: tcg\ndisks:\n{disks}"))
    return daemon.cli("define", str(f), check=check)


def refused(daemon: Daemon, tmp_path: Path, tiny: object, disks: str) -> str:
    r = define(daemon, tmp_path, tiny, "bad", disks, check=False)
    assert r.returncode != 0, r.stdout
    assert "Traceback" not in r.stderr
    return r.stderr


def test_host_system_paths_and_wrong_types_are_refused_at_define(
    daemon: Daemon, tiny: object, tmp_path: Path
) -> None:
    needs_root()
    shadow = Path("/etc/shadow")
    before = state_of(shadow) if shadow.exists() else None
    link = tmp_path / "innocent.img"
    link.symlink_to("/etc/shadow")
    err = refused(daemon, tmp_path, tiny, f"  - path: {link}\n")
    assert "system location /etc" in err and "/etc/shadow" in err, err
    dotted = f"{tmp_path}/../../../../../../etc/shadow"
    assert "system location /etc" in refused(daemon, tmp_path, tiny, f"  - path: {dotted}\n")
    # read-only, and not readable by everyone: still refused (nothing of /etc is lent)
    err = refused(daemon, tmp_path, tiny, f"  - path: {link}\n    readonly: true\n")
    assert "system location /etc" in err, err
    if before is not None:
        assert state_of(shadow) == before  # never touched
    # a directory, a block device named as a file, a file named as a block device
    err = refused(daemon, tmp_path, tiny, f"  - path: {tmp_path}\n")
    assert "is a directory" in err, err
    img = qcow2(tmp_path / "plain.qcow2")
    err = refused(daemon, tmp_path, tiny, f"  - path: {img}\n    type: block\n")
    assert "not a block device" in err, err
    with loop_device(tmp_path, "blk") as dev:
        err = refused(daemon, tmp_path, tiny, f"  - path: {dev}\n    format: raw\n")
        assert "is a block device; say type: block" in err, err
    # virtkit's own files are not guest images
    db = daemon.state_dir / "virtkit.db"
    err = refused(daemon, tmp_path, tiny, f"  - path: {db}\n    format: raw\n")
    assert "virtkit's own directory" in err, err
    # a kernel from /etc is refused too
    f = tmp_path / "k.yaml"
    f.write_text(tiny_yaml(tiny, "k").replace(str(tiny.kernel), str(link)))  # type: ignore[attr-defined]
    r = daemon.cli("define", str(f), check=False)
    assert r.returncode != 0 and "system location /etc" in r.stderr, r.stderr


def test_a_mounted_block_device_is_refused(daemon: Daemon, tiny: object, tmp_path: Path) -> None:
    needs_root()
    with loop_device(tmp_path, "mnt") as dev:
        subprocess.run(["mkfs.ext4", "-q", "-F", str(dev)], check=True, capture_output=True)
        mnt = tmp_path / "mnt"
        mnt.mkdir()
        subprocess.run(["mount", str(dev), str(mnt)], check=True)
        try:
            err = refused(daemon, tmp_path, tiny, f"  - path: {dev}\n    type: block\n")
            assert f"mounted on {mnt}" in err, err
        finally:
            subprocess.run(["umount", str(mnt)], check=False)


def uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError("no Uid line")


def can_open_as(uid: int, path: Path) -> bool:
    r = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                        "dd", f"if={path}", "of=/dev/null", "bs=512", "count=1"],
                       capture_output=True)  # fmt: skip
    return r.returncode == 0


def test_owner_mode_acl_audit_two_guests(daemon: Daemon, tiny: object, tmp_path: Path) -> None:
    """define/start/stop/undefine of guests using private images, a shared read-only
    base, read-only media and a block device: afterwards every path's owner, mode and
    ACL is what it was; while they run, each QEMU has its own uid and cannot open the
    other's image."""
    needs_root()
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    a_img, b_img = qcow2(private / "a.qcow2"), qcow2(private / "b.qcow2")
    os.chmod(a_img, 0o640)  # (qemu-img makes 0644: readable by anyone anyway)
    os.chmod(b_img, 0o600)
    base = tmp_path / "base.img"
    base.write_bytes(b"\0" * 65536)
    os.chmod(base, 0o600)
    media = private / "media.iso"
    media.write_bytes(b"\0" * 65536)
    with loop_device(tmp_path, "guestblk") as dev:
        watched = [a_img, b_img, base, media, dev, Path(str(tiny.kernel)),  # type: ignore[attr-defined]
                   Path(str(tiny.initrd)), daemon.run_dir / "qemu", daemon.state_dir / "log"]  # type: ignore[attr-defined]  # fmt: skip
        (daemon.run_dir / "qemu").mkdir(parents=True, exist_ok=True)
        (daemon.state_dir / "log").mkdir(parents=True, exist_ok=True)
        before = audit(watched, tmp_path)
        define(
            daemon,
            tmp_path,
            tiny,
            "ga",
            f"  - path: {a_img}\n  - path: {base}\n"
            f"    format: raw\n    readonly: true\n  - path: {media}\n    device: cdrom\n",
        )
        define(daemon, tmp_path, tiny, "gb", f"  - path: {b_img}\n  - path: {base}\n"
               f"    format: raw\n    readonly: true\n  - path: {dev}\n    type: block\n"
               "    format: raw\n")  # fmt: skip
        daemon.cli("start", "ga")
        daemon.cli("start", "gb")
        daemon.wait_console("ga", BOOT)
        daemon.wait_console("gb", BOOT)
        pids = qemu_pids(str(daemon.run_dir))
        assert len(pids) == 2
        uids = {uid_of(p) for p in pids}
        assert len(uids) == 2, uids  # one uid per QEMU
        info_a = daemon.cli("dominfo", "ga").stdout
        ua = next(u for u in uids if f"uid {u}" in info_a)
        ub = next(u for u in uids if u != ua)
        assert can_open_as(ua, a_img) and can_open_as(ub, b_img)
        assert not can_open_as(ua, b_img) and not can_open_as(ub, a_img)
        assert not can_open_as(ua, dev) and can_open_as(ub, dev)
        assert a_img.stat().st_uid == 0 and b_img.stat().st_uid == 0  # nothing chowned
        daemon.cli("destroy", "ga")
        assert not can_open_as(ua, a_img)  # given back at once
        assert can_open_as(ub, base)  # the shared base stays open to the other guest
        daemon.cli("destroy", "gb")
        daemon.cli("undefine", "ga")
        daemon.cli("undefine", "gb")
        assert audit(watched, tmp_path) == before
        no_entries_for({ua, ub}, watched)
    assert not [p for p in Path("/run/virtkit-uids").glob("*")
                if str(daemon.state_dir) in p.read_text()]  # fmt: skip


def borrows(daemon: Daemon) -> int:
    db = sqlite3.connect(daemon.state_dir / "virtkit.db")
    try:
        return int(db.execute("SELECT count(*) FROM borrows").fetchone()[0])
    finally:
        db.close()


def test_files_given_back_after_a_crash_during_start_and_while_away(
    daemon: Daemon, tiny: object, tmp_path: Path
) -> None:
    needs_root()
    private = tmp_path / "p"
    private.mkdir(mode=0o700)
    img = qcow2(private / "c.qcow2")
    watched = [img, Path(str(tiny.kernel))]  # type: ignore[attr-defined]
    before = audit(watched, tmp_path)
    define(daemon, tmp_path, tiny, "gc", f"  - path: {img}\n")
    # the daemon dies after lending the files, before QEMU exists
    crash_at(daemon, "start:lent", "start", "gc")
    assert not qemu_pids(str(daemon.run_dir))
    assert audit(watched, tmp_path) == before and borrows(daemon) == 0
    # the guest's QEMU dies while the daemon is not running
    daemon.cli("start", "gc")
    daemon.wait_console("gc", BOOT)
    assert borrows(daemon) > 0
    daemon.kill9()
    [pid] = qemu_pids(str(daemon.run_dir))
    os.kill(pid, 9)
    for _ in range(100):
        if not qemu_pids(str(daemon.run_dir)):
            break
        import time

        time.sleep(0.05)
    daemon.start()
    assert audit(watched, tmp_path) == before and borrows(daemon) == 0
