"""Read files out of an ISO image with pycdlib — no loop mount, no root needed.

Names are looked up the way the media was written: Rock Ridge (case-sensitive,
symlinks followed), then Joliet, then UDF, then plain ISO9660 names matched
loosely (``images/pxeboot/vmlinuz`` finds ``/IMAGES/PXEBOOT/VMLINUZ.;1``).
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from virtkit.errors import ConfigError

_MAX_SYMLINKS = 8


def _iso9660_key(name: str) -> str:
    """A loose comparison key for ISO9660 names: no version, upper case, [A-Z0-9_]."""
    name = name.split(";", 1)[0].rstrip(".").upper()
    return re.sub(r"[^A-Z0-9]", "_", name).lstrip("_")


class IsoImage:
    """An open ISO image. Use as a context manager; paths are relative ('a/b/c')."""

    def __init__(self, path: Path) -> None:
        import pycdlib
        from pycdlib.pycdlibexception import PyCdlibException

        self.path = path
        self._iso: Any = pycdlib.PyCdlib()
        try:
            self._iso.open(str(path))
        except (PyCdlibException, OSError, ValueError, IndexError) as exc:
            raise ConfigError(
                f"{path} is not a readable ISO 9660 image ({exc}); give an install ISO, "
                "an install tree directory, or an http(s) URL"
            ) from exc
        self._cache: dict[str, tuple[str, str] | None] = {}

    def __enter__(self) -> IsoImage:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._iso.close()

    def is_file(self, rel: str) -> bool:
        return self._locate(rel) is not None

    def read_bytes(self, rel: str, limit: int = 1024 * 1024) -> bytes | None:
        key = self._locate(rel)
        if key is None:
            return None
        with self._iso.open_file_from_iso(**{key[0]: key[1]}) as f:
            data: bytes = f.read(limit + 1)
        if len(data) > limit:
            raise ConfigError(f"{rel} in {self.path} is larger than {limit} bytes")
        return data

    def extract(self, rel: str, out: IO[bytes], chunk: int = 1024 * 1024) -> int:
        """Copy the file ``rel`` to ``out``; returns the byte count. KeyError if absent."""
        key = self._locate(rel)
        if key is None:
            raise KeyError(rel)
        done = 0
        with self._iso.open_file_from_iso(**{key[0]: key[1]}) as f:
            while data := f.read(chunk):
                out.write(data)
                done += len(data)
        return done

    # -- lookup ---------------------------------------------------------------

    def _locate(self, rel: str) -> tuple[str, str] | None:
        """(pycdlib keyword, path) of a regular file, or None."""
        rel = rel.strip("/")
        if rel not in self._cache:
            self._cache[rel] = self._lookup(rel)
        return self._cache[rel]

    def _lookup(self, rel: str) -> tuple[str, str] | None:
        iso = self._iso
        if iso.has_rock_ridge():
            path = self._rr_resolve("/" + rel)
            if path is not None:
                return ("rr_path", path)
        if iso.has_joliet() and self._is_file_record(joliet_path="/" + rel):
            return ("joliet_path", "/" + rel)
        if iso.has_udf() and self._is_file_record(udf_path="/" + rel):
            return ("udf_path", "/" + rel)
        found = self._iso9660_walk(rel)
        return ("iso_path", found) if found else None

    def _record(self, **kwargs: str) -> Any:
        from pycdlib.pycdlibexception import PyCdlibException

        try:
            return self._iso.get_record(**kwargs)
        except (PyCdlibException, KeyError, IndexError):
            return None

    def _is_file_record(self, **kwargs: str) -> bool:
        rec = self._record(**kwargs)
        return rec is not None and bool(rec.is_file())

    def _rr_resolve(self, path: str) -> str | None:
        for _ in range(_MAX_SYMLINKS):
            rec = self._record(rr_path=path)
            if rec is None:
                return None
            if rec.rock_ridge is not None and rec.rock_ridge.is_symlink():
                target = rec.rock_ridge.symlink_path().decode("utf-8", "replace")
                base = posixpath.dirname(path)
                path = posixpath.normpath(posixpath.join(base, target))
                if not path.startswith("/") or path.startswith("//"):
                    path = "/" + path.lstrip("/")
                continue
            return path if rec.is_file() else None
        return None

    def _iso9660_walk(self, rel: str) -> str | None:
        from pycdlib.pycdlibexception import PyCdlibException

        current = "/"
        parts = [p for p in rel.split("/") if p]
        for i, part in enumerate(parts):
            want = _iso9660_key(part)
            last = i == len(parts) - 1
            try:
                children = list(self._iso.list_children(iso_path=current))
            except (PyCdlibException, KeyError, IndexError):
                return None
            match = None
            for child in children:
                if child.is_dot() or child.is_dotdot():
                    continue
                name = child.file_identifier().decode("ascii", "replace")
                if _iso9660_key(name) == want and (child.is_file() if last else child.is_dir()):
                    match = name
                    break
            if match is None:
                return None
            current = posixpath.join(current, match)
        return current if parts else None
