"""``--location``: find the installer kernel and initrd in an ISO, a tree or a URL.

Like virt-install: a local ISO (read with pycdlib, never mounted), a local install
tree, or an http(s) URL to either. The kernel and initrd are copied into
``work_dir``; a downloaded ISO lands there too (it is attached as a CD-ROM for
the install). Everything created is listed in ``InstallMedia.files_created`` so
the caller can roll back; on failure this function removes what it created.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from virtkit.errors import ConfigError, NotFoundError, VirtkitError
from virtkit.storage import download, layouts
from virtkit.storage.download import Progress
from virtkit.storage.isoread import IsoImage
from virtkit.storage.sources import IsoSource, MediaSource, UrlSource, open_local

KERNEL_NAME = "vmlinuz"
INITRD_NAME = "initrd.img"
_UNSUPPORTED = ("ftp", "ftps", "nfs", "cifs", "smb", "tftp", "hd", "cdrom")
_HINT = "pass them explicitly: --location SRC,kernel=PATH,initrd=PATH (paths inside the media)"


@dataclass(frozen=True)
class InstallMedia:
    kernel: Path
    initrd: Path
    iso: Path | None  # the ISO to attach as a CD-ROM during the install
    tree: Path | None  # a local install tree
    distro: str  # which layout matched: treeinfo, rhel, debian, ubuntu, suse, ... override
    files_created: list[Path]


def resolve_location(
    location: str,
    work_dir: Path,
    *,
    kernel: str | None = None,
    initrd: str | None = None,
    checksum: str | None = None,
    progress: Progress | None = None,
) -> InstallMedia:
    """Resolve ``location`` to a kernel + initrd copied into ``work_dir``.

    Raises ConfigError (bad location, scheme, checksum, no kernel found — the
    message lists every path looked at), NotFoundError (missing local path or
    HTTP 404), HostError (network failure).
    """
    text = location.strip()
    if not text:
        raise ConfigError("--location is empty; give an ISO, an install tree or an http(s) URL")
    if checksum:
        download.parse_checksum(checksum)
    work_dir.mkdir(parents=True, exist_ok=True)
    scheme = _scheme(text)
    if scheme in ("http", "https"):
        return _resolve_url(text, work_dir, kernel, initrd, checksum, progress)
    if scheme == "file":
        text = unquote(urlsplit(text).path)
    elif scheme is not None:
        raise ConfigError(
            f"--location {text}: {scheme}: locations are not supported; use a local ISO, "
            "a local directory (mount NFS/CIFS shares first) or an http(s) URL"
        )
    path = Path(text)
    if not path.is_absolute():
        raise ConfigError(f"--location {text}: give an absolute path")
    if not path.exists():
        raise NotFoundError(f"install location {path} does not exist; check the path")
    src = open_local(path)
    try:
        if checksum:
            if not isinstance(src, IsoSource):
                raise ConfigError(
                    f"checksum= applies to an ISO image, and {path} is a directory; drop it"
                )
            verify_file(path, checksum)
        media = _from_source(src, work_dir, kernel, initrd, progress)
    finally:
        if isinstance(src, IsoSource):
            src.image.close()
    if isinstance(src, IsoSource):
        return replace(media, iso=path)
    return replace(media, tree=path)


def _scheme(text: str) -> str | None:
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*):", text)
    if m is None:
        return None
    scheme = m.group(1).lower()
    if text[m.end() :].startswith("//") or scheme in _UNSUPPORTED:
        return scheme
    return None


def verify_file(path: Path, checksum: str) -> None:
    """ConfigError naming both digests when ``path`` does not match ``checksum``."""
    algo, want = download.parse_checksum(checksum)
    h = hashlib.new(algo)
    with path.open("rb") as f:
        while chunk := f.read(1024 * 1024):
            h.update(chunk)
    got = h.hexdigest()
    if got != want:
        raise ConfigError(
            f"checksum mismatch for {path}: expected {algo}:{want}, got {algo}:{got}; "
            "check the checksum or fetch the image again"
        )


def _resolve_url(
    url: str,
    work_dir: Path,
    kernel: str | None,
    initrd: str | None,
    checksum: str | None,
    progress: Progress | None,
) -> InstallMedia:
    if not _is_iso_url(url):
        if checksum:
            raise ConfigError(
                f"checksum= applies to an ISO image, and {url} is an install tree; drop it"
            )
        media = _from_source(UrlSource(url), work_dir, kernel, initrd, progress)
        return media
    iso = work_dir / _iso_name(url)
    download.download(url, iso, checksum=checksum, progress=progress)
    try:
        with IsoImage(iso) as image:
            media = _from_source(IsoSource(image), work_dir, kernel, initrd, progress)
    except BaseException:
        iso.unlink(missing_ok=True)
        raise
    return replace(media, iso=iso, files_created=[iso, *media.files_created])


def _is_iso_url(url: str) -> bool:
    path = urlsplit(url).path
    if path.lower().endswith(".iso"):
        return True
    if path.endswith("/"):
        return False
    try:
        with download.open_url(url, method="HEAD") as resp:
            ctype = str(getattr(resp, "headers", {}).get("Content-Type", "")).lower()
            final = str(getattr(resp, "url", url))
    except VirtkitError:
        return False  # many servers refuse directory URLs; .treeinfo may still be there
    return not final.endswith("/") and ("iso9660" in ctype or "octet-stream" in ctype)


def _iso_name(url: str) -> str:
    name = PurePosixPath(unquote(urlsplit(url).path)).name
    if not name or name.startswith(".") or not re.fullmatch(r"[\w.+-]+", name):
        return "install.iso"
    return name


def find_kernel(src: MediaSource, kernel: str | None, initrd: str | None) -> tuple[str, str, str]:
    """(distro, kernel path, initrd path) inside ``src``."""
    if kernel or initrd:
        if not (kernel and initrd):
            raise ConfigError(
                "give both kernel= and initrd= with --location (paths inside the media)"
            )
        kpath = layouts.inner_path(kernel, "kernel=")
        ipath = layouts.inner_path(initrd, "initrd=")
        for what, rel in (("kernel", kpath), ("initrd", ipath)):
            if not src.is_file(rel):
                raise NotFoundError(
                    f"{what}={rel} is not a file in {src.label}; check the path inside the media"
                )
        return "override", kpath, ipath
    looked: list[str] = []
    for name in layouts.TREEINFO_NAMES:
        looked.append(f"{name} [{layouts.TREEINFO_SECTION}] kernel=, initrd=")
        text = src.read_text(name)
        if text is None:
            continue
        pair = layouts.treeinfo_images(text)
        if pair is not None:
            if src.is_file(pair[0]) and src.is_file(pair[1]):
                return "treeinfo", pair[0], pair[1]
            looked.append(f"{pair[0]} + {pair[1]} (named by {name})")
        break
    disk_info: str | None = None
    for lay in layouts.candidates(src.is_iso):
        looked.append(f"{lay.kernel} + {lay.initrd}")
        if src.is_file(lay.kernel) and src.is_file(lay.initrd):
            if lay.kernel == "install/vmlinuz":
                disk_info = src.read_text(".disk/info")
            return layouts.refine_distro(lay, disk_info), lay.kernel, lay.initrd
    listing = "\n  ".join(looked)
    raise ConfigError(
        f"no installer kernel/initrd found in {src.label}; looked for:\n  {listing}\n{_HINT}",
        looked_for=looked,
    )


def _from_source(
    src: MediaSource,
    work_dir: Path,
    kernel: str | None,
    initrd: str | None,
    progress: Progress | None,
) -> InstallMedia:
    distro, kpath, ipath = find_kernel(src, kernel, initrd)
    created: list[Path] = []
    try:
        for rel, name in ((kpath, KERNEL_NAME), (ipath, INITRD_NAME)):
            dest = work_dir / name
            _materialize(src, rel, dest, progress)
            created.append(dest)
    except BaseException:
        for p in created:
            p.unlink(missing_ok=True)
        raise
    return InstallMedia(
        kernel=created[0], initrd=created[1], iso=None, tree=None, distro=distro,
        files_created=created,
    )  # fmt: skip


def _materialize(src: MediaSource, rel: str, dest: Path, progress: Progress | None) -> None:
    """Copy ``rel`` from ``src`` to ``dest`` atomically (temp file, rename)."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        src.copy_to(rel, tmp, progress)
        if tmp.stat().st_size == 0:
            raise ConfigError(f"{rel} in {src.label} is empty; pass kernel=/initrd= explicitly")
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
