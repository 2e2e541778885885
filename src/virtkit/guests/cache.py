"""Where built guests live, and how a build lands there atomically."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from virtkit.fsutil import fsync_dir


def default_cache_dir() -> Path:
    """``$VIRTKIT_CACHE_DIR/guests``, else ``$XDG_CACHE_HOME/virtkit/guests`` (``~/.cache``)."""
    env = os.environ.get("VIRTKIT_CACHE_DIR")
    if env:
        return Path(env) / "guests"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "virtkit" / "guests"


@contextlib.contextmanager
def build_lock(cache_dir: Path) -> Iterator[None]:
    """Serialise builds in ``cache_dir`` (across processes); waits for a running build."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    with (cache_dir / ".lock").open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(cache_dir: Path) -> None:
    """Remove work dirs left by builds whose process is gone (killed, power loss)."""
    for p in cache_dir.glob(".build-*"):
        try:
            pid = int(p.name.split("-")[1])
        except (IndexError, ValueError):
            continue
        if not _pid_alive(pid):
            shutil.rmtree(p, ignore_errors=True)


@contextlib.contextmanager
def workdir(cache_dir: Path) -> Iterator[Path]:
    """A scratch directory on the cache's filesystem (so results can be renamed in)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f".build-{os.getpid()}-", dir=cache_dir))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def publish(src: Path, dest: Path) -> None:
    """Rename the finished ``src`` to ``dest``; readers see all of it or nothing."""
    try:
        os.rename(src, dest)
    except OSError:
        if not dest.exists():
            raise
        # Someone else published the same thing first; theirs is as good as ours.
    fsync_dir(dest.parent)
