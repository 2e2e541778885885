"""virtkit install with virt-install's syntax, end to end on the tiny guest's install media.

The installer (the tiny kernel + an initrd taken from the ISO/tree) prints its kernel
command line, writes a bootable system onto the new disk and reboots; virtkit then
starts the domain from disk, which prints virtkit.installed=1.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Daemon
from tests.integration.test_bridge import bridge  # noqa: F401  (fixture)

pytestmark = pytest.mark.qemu


@pytest.fixture(scope="session")
def media() -> tuple[Path, Path]:
    from virtkit.guests.media import ensure_iso, ensure_tree

    return ensure_iso(), ensure_tree()


def read_until(p: subprocess.Popen[bytes], marker: bytes, timeout: float) -> bytes:
    assert p.stdout is not None
    fd = p.stdout.fileno()
    buf = b""
    deadline = time.monotonic() + timeout
    while marker not in buf:
        left = deadline - time.monotonic()
        if left <= 0 or p.poll() is not None:
            raise AssertionError(
                f"{marker!r} not seen; output:\n{buf[-4000:].decode(errors='replace')}"
            )
        ready, _, _ = select.select([fd], [], [], min(left, 1.0))
        if ready:
            chunk = os.read(fd, 65536)
            buf += chunk
    return buf


def test_guide_command_as_typed(
    daemon: Daemon,
    media: tuple[Path, Path],
    tmp_path: Path,
    bridge: tuple[str, str],  # noqa: F811
) -> None:
    iso, _ = media
    br, _ns = bridge
    disk = tmp_path / "images" / "rhel-server.img"
    argv = [
        "install", "--name=kvm-server", "--memory=512,maxmemory=1024", "--vcpus=1,maxvcpus=2",
        "--os-type=linux", "--os-variant=rhel7", f"--location={iso}",
        "--disk", f"path={disk},size=12", "--network", f"bridge={br}", "--graphics=none",
        "--console=pty,target_type=serial", "--extra-args=console=tty0 console=ttyS0",
    ]  # fmt: skip
    with (tmp_path / "stderr").open("wb") as err, subprocess.Popen(
        [sys.executable, "-m", "virtkit.cli", *argv], env=daemon.env,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
    ) as p:  # fmt: skip
        try:
            out = read_until(p, b"VIRTKIT-INSTALL-DONE", 180)
            assert b"VIRTKIT-CMDLINE: console=tty0 console=ttyS0" in out  # --extra-args arrived
            # the console follows the guest into its first boot from disk
            out = read_until(p, b"virtkit.installed=1", 180)
            assert p.stdin is not None
            p.stdin.write(b"\x1d")
            p.stdin.flush()
            p.wait(30)
        finally:
            if p.poll() is None:
                p.kill()
    assert p.returncode == 0
    assert disk.exists()
    info = daemon.cli("dominfo", "kvm-server").stdout
    assert "Persistent:     yes" in info and "State:          running" in info
    assert "Max CPU(s):     2" in info
    cfg = daemon.cli("dumpconfig", "kvm-server").stdout
    assert "kernel" not in cfg  # the stored definition boots from disk
    # and it keeps booting from disk
    daemon.cli("destroy", "kvm-server")
    mark = daemon.console_size("kvm-server")
    daemon.cli("start", "kvm-server")
    daemon.wait_console("kvm-server", "virtkit.installed=1", start=mark, timeout=120)
    daemon.cli("destroy", "kvm-server")


def test_tree_location_noautoconsole_wait(
    daemon: Daemon, media: tuple[Path, Path], tmp_path: Path
) -> None:
    _, tree = media
    disk = tmp_path / "t.qcow2"
    r = daemon.cli(
        "install", "-n", "treeinst", "-m", "256", "-l", str(tree), "--disk",
        f"{disk},size=1", "-x", "console=ttyS0 marker=hello-tree", "--network", "user",
        "--noautoconsole", "--wait", "5", timeout=400,
    )  # fmt: skip
    assert "Domain creation completed" in r.stdout, r.stdout + r.stderr
    log = daemon.console_log("treeinst").read_text(errors="replace")
    assert "marker=hello-tree" in log and "VIRTKIT-INSTALL-DONE" in log
    daemon.wait_console("treeinst", "virtkit.installed=1", timeout=120)
    daemon.cli("destroy", "treeinst")


def test_failed_install_leaves_nothing(daemon: Daemon, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    disk = tmp_path / "never.qcow2"
    r = daemon.cli("install", "--name", "broken", "--memory", "256", "--location", str(empty),
                   "--disk", f"path={disk},size=1", "--noautoconsole", check=False)  # fmt: skip
    assert r.returncode != 0
    assert "kernel=" in r.stderr  # says how to point at the kernel/initrd
    assert not disk.exists()
    assert "broken" not in daemon.cli("list", "--all").stdout


def test_bad_install_options(daemon: Daemon, tmp_path: Path) -> None:
    cases = [
        (["--name", "x", "--memory", "256", "--frobnicate"], "unknown option"),
        (["--name", "x", "--memory", "256", "--disk", "path=/tmp/a.qcow2,bogus=1"], "bogus"),
        (["--name", "x", "--memory", "256", "--extra-args", "a=b", "--import",
          "--disk", "/tmp/a.qcow2"], "--extra-args"),
        (["--name", "x", "--memory", "256", "--cdrom", "/a.iso", "--location", "/b"], "--cdrom"),
        (["--name", "x", "--memory", "256", "--os-variant", "rhel77x"], "rhel"),
        (["--name", "x", "--memory", "256", "--import", "--disk", f"{tmp_path}/nope.qcow2"],
         "size"),
        (["--name", "x", "--memory", "256", "--import", "--disk",
          "path=/proc/nope/x.qcow2,size=1"], "writable directory"),
    ]  # fmt: skip
    for args, expect in cases:
        r = daemon.cli("install", *args, check=False)
        assert r.returncode != 0 and expect in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr
    assert "x " not in daemon.cli("list", "--all").stdout


def test_dry_run_and_print_xml(daemon: Daemon, media: tuple[Path, Path], tmp_path: Path) -> None:
    iso, _ = media
    disk = tmp_path / "dry.qcow2"
    r = daemon.cli("install", "--name", "dry", "--memory", "256", "--location", str(iso),
                   "--disk", f"path={disk},size=1", "--dry-run")  # fmt: skip
    assert "Dry run completed" in r.stdout
    assert not disk.exists() and "dry" not in daemon.cli("list", "--all").stdout
    r = daemon.cli("install", "--name", "px", "--memory", "256", "--import",
                   "--disk", f"path={disk}", "--print-xml")  # fmt: skip
    assert r.stdout.lstrip().startswith("<domain") and "<name>px</name>" in r.stdout
    xml = tmp_path / "px.xml"
    xml.write_text(r.stdout.replace(str(disk), str(iso)))
    daemon.cli("define", str(xml))
    out = daemon.cli("dumpxml", "px").stdout
    assert "<name>px</name>" in out
    daemon.cli("undefine", "px")


def test_cloud_init_seed_read_by_guest(daemon: Daemon, tmp_path: Path) -> None:
    from tests.integration.test_survival import console_roundtrip
    from virtkit.guests.bootdisk import ensure_boot_disk

    disk = tmp_path / "ci.img"
    disk.write_bytes(ensure_boot_disk().read_bytes())
    ud = tmp_path / "user-data"
    ud.write_text("#cloud-config\nruncmd:\n  - echo seeded-by-virtkit\n")
    daemon.cli("install", "--name", "ci", "--memory", "256", "--import",
               "--disk", f"path={disk},format=raw", "--network", "none",
               "--cloud-init", f"user-data={ud}", "--noautoconsole")  # fmt: skip
    daemon.wait_console("ci", "tiny# ", timeout=120)
    cmd = "mkdir -p /mnt; mount -t iso9660 /dev/sr0 /mnt && cat /mnt/user-data"
    console_roundtrip(daemon, "ci", cmd + " && echo CIDATA-$((3*3))", "CIDATA-9")
    assert "seeded-by-virtkit" in daemon.console_log("ci").read_text(errors="replace")
    daemon.cli("destroy", "ci")


@pytest.fixture
def http_media(media: tuple[Path, Path]) -> Iterator[str]:
    """Serve the install ISO and tree on 127.0.0.1 only."""
    import functools
    import http.server
    import threading

    root = media[0].parent
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))

    class Quiet(http.server.ThreadingHTTPServer):
        def handle_error(self, request: object, client_address: object) -> None:
            pass

    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    srv = Quiet(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


def test_url_location_with_progress_and_checksum(
    daemon: Daemon, media: tuple[Path, Path], http_media: str, tmp_path: Path
) -> None:
    import hashlib

    iso = media[0]
    good = "sha256:" + hashlib.sha256(iso.read_bytes()).hexdigest()
    url = f"{http_media}/{iso.name}"
    disk = tmp_path / "u.qcow2"
    wrong = f"{url},checksum=sha256:{'0' * 64}"
    bad = daemon.cli("install", "-n", "urlbad", "-m", "256", "-l", wrong,
                     "--disk", f"{disk},size=1", "--noautoconsole", check=False)  # fmt: skip
    assert bad.returncode != 0 and "checksum" in bad.stderr.lower()
    assert not disk.exists() and "urlbad" not in daemon.cli("list", "--all").stdout
    r = daemon.cli("install", "-n", "urlinst", "-m", "256", "-l", f"{url},checksum={good}",
                   "--disk", f"{disk},size=1", "-x", "console=ttyS0 from=url",
                   "--noautoconsole", "--wait", "5", timeout=400)  # fmt: skip
    assert "Domain creation completed" in r.stdout, r.stdout + r.stderr
    events = daemon.cli("event", "--all", "--domain", "urlinst").stdout
    assert "'progress'" in events  # download progress reached the client as events
    assert "from=url" in daemon.console_log("urlinst").read_text(errors="replace")
    daemon.cli("destroy", "urlinst")


def test_initrd_inject_noreboot_transient(
    daemon: Daemon, media: tuple[Path, Path], tmp_path: Path
) -> None:
    from tests.integration.test_survival import console_roundtrip

    _, tree = media
    marker = tmp_path / "virtkit-injected.txt"
    marker.write_text("injected-ok\n")
    # noinstall: the installer stays out of the way, so we can look around its root
    daemon.cli("install", "-n", "inj", "-m", "256", "-l", str(tree), "--disk", "none",
               "--initrd-inject", str(marker), "-x", "console=ttyS0 virtkit.noinstall=1",
               "--network", "none", "--noautoconsole", "--transient", "--noreboot")  # fmt: skip
    daemon.wait_console("inj", "tiny# ", timeout=120)
    console_roundtrip(daemon, "inj", "cat /virtkit-injected.txt && echo INJ-$((4*4))", "INJ-16")
    assert "Persistent:     no" in daemon.cli("dominfo", "inj").stdout
    daemon.cli("console", "inj", input="reboot\n", check=False)  # the installer reboots ...
    deadline = time.monotonic() + 60
    while "inj" in daemon.cli("list", "--all").stdout:  # ... and the transient domain is gone
        assert time.monotonic() < deadline, daemon.cli("list", "--all").stdout
        time.sleep(0.2)


def test_cdrom_install(daemon: Daemon, media: tuple[Path, Path], tmp_path: Path) -> None:
    """--cdrom: SeaBIOS boots the ISO (ISOLINUX), the installer writes the disk and reboots,
    and virtkit restarts the domain from disk."""
    iso, _ = media
    disk = tmp_path / "cd.qcow2"
    r = daemon.cli("install", "--name", "cdinst", "--memory", "256", "--cdrom", str(iso),
                   "--disk", f"path={disk},size=1", "--os-variant", "generic",
                   "--network", "none", "--noautoconsole", "--wait", "5", timeout=400)  # fmt: skip
    assert "Domain creation completed" in r.stdout, r.stdout + r.stderr
    log = daemon.console_log("cdinst").read_text(errors="replace")
    assert "ISOLINUX" in log and "VIRTKIT-INSTALL-DONE" in log
    daemon.wait_console("cdinst", "virtkit.installed=1", timeout=120)
    daemon.cli("destroy", "cdinst")
