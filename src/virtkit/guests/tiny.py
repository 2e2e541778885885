"""The "tiny" test guest: Debian's kernel plus a busybox initramfs.

Built from ``linux-image-<abi>-amd64`` and ``busybox-static`` without installing
either: the packages are downloaded and unpacked with ``dpkg-deb -x``, the kernel
modules the guest needs are picked with their dependency closure, and a gzipped
newc cpio archive is written in Python.  See ``tiny-init.sh`` for what the guest
does at boot (serial-console markers, ACPI power button, CPU/memory onlining).
"""

from __future__ import annotations

import hashlib
import lzma
import re
import shutil
import subprocess
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from virtkit.errors import HostError
from virtkit.guests import cache, debpkg, kmods
from virtkit.guests.cpio import write_gzip_cpio

# Load order matters only through dependencies, which the closure handles; the
# crypto helpers come first so crc users find an accelerated or generic algorithm.
MODULES = (
    *("crc32c_generic", "crct10dif_generic", "crc64_rocksoft_generic"),
    *("virtio_pci", "virtio_mmio", "virtio_blk", "virtio_net", "virtio_console"),
    *("virtio_balloon",),  # virtio_mmio: the fast profile's microvm has no PCI bus
    *("virtio_rng", "virtio_scsi", "virtio_mem", "sd_mod", "sr_mod", "cdrom", "isofs"),
    *("evdev", "button", "failover", "net_failover", "9pnet_virtio", "9p", "e1000", "ext4"),
    *("ahci",),  # SATA CD-ROMs (install media, cloud-init seeds) on q35
)
OPTIONAL = frozenset(("virtio_mem", "9pnet_virtio", "9p", "ext4", *MODULES[:3]))
BUILD_FORMAT = 2  # bump when the layout of the initramfs changes

_WRAPPER = "#!/bin/sh\nsync\nexec /bin/busybox {cmd} -f\n"
_PROFILE = """\
export PATH=/sbin:/bin:/usr/sbin:/usr/bin HOME=/root TERM=linux
export PS1='tiny# '
alias ll='ls -l'
# ash runs its built-in applets before PATH, and applet reboot/poweroff only signal
# PID 1 (a plain shell, which ignores them): use the /sbin -f wrappers instead.
alias reboot=/sbin/reboot poweroff=/sbin/poweroff halt=/sbin/halt
"""
_POWER_BUTTON = """\
#!/bin/sh
echo VIRTKIT-POWER-BUTTON > /dev/console
sync
exec /bin/busybox poweroff -f
"""
_UDHCPC = """\
#!/bin/sh
# udhcpc hook: configure $interface from the lease.
case "$1" in
deconfig)
    ip -4 addr flush dev "$interface"
    ip link set "$interface" up
    ;;
bound|renew)
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    if [ -n "$router" ]; then
        ip route replace default via "${router%% *}" dev "$interface"
    fi
    : > /etc/resolv.conf
    for s in $dns; do echo "nameserver $s" >> /etc/resolv.conf; done
    echo "VIRTKIT-DHCP-OK $interface $ip" > /dev/console
    ;;
esac
exit 0
"""


@dataclass(frozen=True)
class TinyGuest:
    """Boot files of the tiny guest.

    ``kernel`` is Debian's compressed ``vmlinuz`` (boots everywhere, including
    UEFI).  ``pvh_kernel`` is the same kernel uncompressed, an ELF with a PVH
    entry point that QEMU's ``-kernel`` boots directly with SeaBIOS; it skips
    the xz decompression that costs ~3.5 s under TCG.  None if unavailable.
    """

    kernel: Path
    initrd: Path
    version: str
    pvh_kernel: Path | None = None


def init_script() -> str:
    return resources.files("virtkit.guests").joinpath("tiny-init.sh").read_text()


def _recipe_hash() -> str:
    h = hashlib.sha256()
    for part in (init_script(), _WRAPPER, _PROFILE, _POWER_BUTTON, _UDHCPC, " ".join(MODULES)):
        h.update(part.encode() + b"\0")
    h.update(str(BUILD_FORMAT).encode())
    return h.hexdigest()[:10]


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+_-]", "_", text)


def _load(d: Path) -> TinyGuest | None:
    kernel, initrd, version = d / "vmlinuz", d / "initrd.img", d / "version"
    if kernel.is_file() and initrd.is_file() and version.is_file():
        pvh = d / "vmlinux"
        return TinyGuest(
            kernel, initrd, version.read_text().strip(), pvh if pvh.is_file() else None
        )
    return None


def find_tiny(cache_dir: Path | None = None) -> TinyGuest | None:
    """The newest tiny guest already built with this recipe, without asking apt."""
    root = cache_dir or cache.default_cache_dir()
    found = sorted(root.glob(f"tiny-*-{_recipe_hash()}"), key=lambda p: p.stat().st_mtime)
    for d in reversed(found):
        guest = _load(d)
        if guest is not None:
            return guest
    return None


def ensure_tiny(cache_dir: Path | None = None, *, refresh: bool = False) -> TinyGuest:
    """Return the tiny guest, building it first if the cache has none.

    A cached guest is returned without consulting apt; ``refresh=True`` asks apt
    for the current kernel and busybox versions and builds them if they are new.
    """
    root = cache_dir or cache.default_cache_dir()
    if not refresh and (guest := find_tiny(root)) is not None:
        return guest
    kpkg = debpkg.resolve(debpkg.depends_on("linux-image-amd64", "linux-image-"))
    bpkg = debpkg.resolve("busybox-static")
    release = kpkg.name.removeprefix("linux-image-")
    version = f"{release} {kpkg.version} busybox {bpkg.version}"
    final = root / _safe(f"tiny-{release}-{kpkg.version}-bb{bpkg.version}-{_recipe_hash()}")
    with cache.build_lock(root):
        if (guest := _load(final)) is not None:
            return guest
        cache.clean_stale(root)
        debs = [debpkg.download(p, root / "debs") for p in (kpkg, bpkg)]
        with cache.workdir(root) as work:
            out = work / "out"
            out.mkdir()
            _build(debs[0], debs[1], work, out)
            (out / "version").write_text(version + "\n")
            cache.publish(out, final)
    guest = _load(final)
    assert guest is not None
    debpkg.log(f"tiny guest ready: {final}")
    return guest


def _build(kernel_deb: Path, busybox_deb: Path, work: Path, out: Path) -> None:
    debpkg.log(f"unpacking {kernel_deb.name}")
    kroot = debpkg.extract(kernel_deb, work / "kernel")
    broot = debpkg.extract(busybox_deb, work / "busybox")
    vmlinuz = sorted((kroot / "boot").glob("vmlinuz-*"))
    moddirs = sorted(p for p in (kroot / "lib" / "modules").glob("*") if p.is_dir())
    if len(vmlinuz) != 1 or len(moddirs) != 1:
        raise HostError(f"unexpected layout in {kernel_deb.name}: {vmlinuz} {moddirs}")
    shutil.copyfile(vmlinuz[0], out / "vmlinuz")
    config = kroot / "boot" / vmlinuz[0].name.replace("vmlinuz-", "config-")
    if config.is_file() and "\nCONFIG_PVH=y\n" in config.read_text():
        elf = uncompress_bzimage(vmlinuz[0].read_bytes())
        if elf is not None:
            (out / "vmlinux").write_bytes(elf)
    busybox = broot / "bin" / "busybox"
    if not busybox.is_file():
        raise HostError(f"{busybox_deb.name} has no bin/busybox")
    _check_busybox(busybox)
    debpkg.log("writing initramfs")
    entries = _rootfs(busybox.read_bytes(), moddirs[0])
    write_gzip_cpio(out / "initrd.img", entries)
    (out / "initrd.img").chmod(0o644)


def _rootfs(busybox: bytes, modroot: Path) -> list[tuple[str, bytes | str | None, int]]:
    tree = kmods.scan_tree(modroot)
    order, missing = kmods.closure(MODULES, tree.deps, tree.builtin)
    required_missing = [m for m in missing if m not in OPTIONAL]
    if required_missing:
        raise HostError(f"kernel {modroot.name} lacks modules {required_missing}")
    kver = modroot.name
    entries: list[tuple[str, bytes | str | None, int]] = [
        ("init", init_script().encode(), 0o755),
        ("bin/busybox", busybox, 0o755),
        ("bin/sh", "busybox", 0),
        ("etc/profile", _PROFILE.encode(), 0o644),
        ("etc/acpi/PWRF/00000080", _POWER_BUTTON.encode(), 0o755),
        ("usr/share/udhcpc/default.script", _UDHCPC.encode(), 0o755),
        ("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n", 0o644),
        ("etc/group", b"root:x:0:\n", 0o644),
        ("root", None, 0o700),
    ]
    for cmd in ("poweroff", "reboot", "halt"):
        entries.append((f"sbin/{cmd}", _WRAPPER.format(cmd=cmd).encode(), 0o755))
    load_list: list[str] = []
    dep_lines: list[str] = []
    for name in order:
        rel = tree.paths[name]
        plain = _plain(rel)
        entries.append((f"lib/modules/{kver}/{plain}", kmods.read_ko(modroot / rel), 0o644))
        load_list.append(plain)
        # modules.dep (for modprobe in the guest): all dependencies, last loaded first
        needed, _ = kmods.closure([name], tree.deps, tree.builtin)
        deps = " ".join(_plain(tree.paths[d]) for d in reversed(needed[:-1]))
        dep_lines.append(f"{plain}: {deps}".rstrip())
    entries.append(("etc/modules.load", ("\n".join(load_list) + "\n").encode(), 0o644))
    entries.append(
        (f"lib/modules/{kver}/modules.dep", ("\n".join(dep_lines) + "\n").encode(), 0o644)
    )
    return entries


def uncompress_bzimage(bzimage: bytes) -> bytes | None:
    """The ELF ``vmlinux`` inside an xz- or gzip-compressed bzImage, or None."""
    for magic, fmt in ((b"\xfd7zXZ\x00", "xz"), (b"\x1f\x8b\x08\x00", "gz")):
        start = bzimage.find(magic)
        if start < 0:
            continue
        try:
            if fmt == "xz":
                elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(bzimage[start:])
            else:
                elf = zlib.decompressobj(wbits=31).decompress(bzimage[start:])
        except (lzma.LZMAError, zlib.error):
            continue
        if elf[:4] == b"\x7fELF":
            return elf
    return None


def _plain(rel: str) -> str:
    """The path a module has in the initramfs, where it is stored uncompressed."""
    return re.sub(r"\.ko\.(xz|zst|gz)$", ".ko", rel)


def _check_busybox(busybox: Path) -> None:
    """Fail the build early if busybox lacks an applet the init relies on."""
    try:
        listed = subprocess.run(
            [str(busybox), "--list"], capture_output=True, text=True, check=True
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return  # cannot run it here (foreign arch, noexec): trust the package
    needed = {"acpid", "cttyhack", "setsid", "insmod", "udhcpc", "ip", "poweroff", "sleep"}
    if lacking := needed - set(listed):
        raise HostError(f"busybox-static lacks applets {sorted(lacking)}")
