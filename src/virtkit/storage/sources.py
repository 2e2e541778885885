"""Install media as something to probe and copy files from: a directory, an ISO, a URL tree."""

from __future__ import annotations

from pathlib import Path
from typing import IO, Protocol
from urllib.parse import quote

from virtkit.errors import ConfigError
from virtkit.storage import download
from virtkit.storage.download import Progress
from virtkit.storage.isoread import IsoImage


class MediaSource(Protocol):
    label: str  # for messages: the path or URL the user gave
    is_iso: bool

    def is_file(self, rel: str) -> bool: ...

    def read_text(self, rel: str) -> str | None: ...

    def copy_to(self, rel: str, dest: Path, progress: Progress | None) -> None:
        """Write the file ``rel`` to ``dest`` (a fresh temp file the caller renames)."""
        ...


def _decode(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", errors="replace")


class DirSource:
    """A local install tree (an unpacked or mounted ISO, an NFS export mounted by hand)."""

    is_iso = False

    def __init__(self, root: Path) -> None:
        self.root = root
        self.label = str(root)

    def _path(self, rel: str) -> Path:
        return self.root / rel

    def is_file(self, rel: str) -> bool:
        return self._path(rel).is_file()

    def read_text(self, rel: str) -> str | None:
        path = self._path(rel)
        if not path.is_file():
            return None
        with path.open("rb") as f:
            return _decode(f.read(1024 * 1024))

    def copy_to(self, rel: str, dest: Path, progress: Progress | None) -> None:
        src = self._path(rel)
        total = src.stat().st_size
        with src.open("rb") as fin, dest.open("wb") as fout:
            _copy(fin, fout, total, progress)


class IsoSource:
    """An ISO image read with pycdlib (never mounted)."""

    is_iso = True

    def __init__(self, image: IsoImage) -> None:
        self.image = image
        self.label = str(image.path)

    def is_file(self, rel: str) -> bool:
        return self.image.is_file(rel)

    def read_text(self, rel: str) -> str | None:
        return _decode(self.image.read_bytes(rel))

    def copy_to(self, rel: str, dest: Path, progress: Progress | None) -> None:
        with dest.open("wb") as fout:
            self.image.extract(rel, fout)


class UrlSource:
    """An install tree served over http(s): the directory that holds ``.treeinfo``."""

    is_iso = False

    def __init__(self, base_url: str) -> None:
        self.base = base_url if base_url.endswith("/") else base_url + "/"
        self.label = base_url

    def url(self, rel: str) -> str:
        return self.base + quote(rel)

    def is_file(self, rel: str) -> bool:
        return download.url_exists(self.url(rel))

    def read_text(self, rel: str) -> str | None:
        return download.fetch_text(self.url(rel))

    def copy_to(self, rel: str, dest: Path, progress: Progress | None) -> None:
        download.download(self.url(rel), dest, progress=progress)


def _copy(fin: IO[bytes], fout: IO[bytes], total: int, progress: Progress | None) -> None:
    done = 0
    while chunk := fin.read(1024 * 1024):
        fout.write(chunk)
        done += len(chunk)
        if progress is not None:
            progress(done, total)


def open_local(path: Path) -> DirSource | IsoSource:
    """A local directory or ISO file; ConfigError for anything else."""
    if path.is_dir():
        return DirSource(path)
    if path.is_file():
        return IsoSource(IsoImage(path))
    raise ConfigError(
        f"install location {path} is neither a directory nor a regular file; "
        "give an ISO image, an install tree directory, or an http(s) URL"
    )
