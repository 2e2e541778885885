"""HTTP(S) downloads with urllib: streamed, checksummed, never leaving a partial file.

The file is written to a hidden temp file beside ``dest`` and renamed into place
only once it is complete and its checksum (when given) matches. Any failure —
HTTP error, dropped connection, checksum mismatch, Ctrl+C — removes the temp file.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from virtkit.errors import ConfigError, HostError, NotFoundError
from virtkit.fsutil import fsync_dir

Progress = Callable[[int, int | None], None]

MAX_DOWNLOAD_BYTES = 64 * 1024**3  # 64 GiB: larger than any install ISO or cloud image
CHUNK_BYTES = 1024 * 1024
TIMEOUT_S = 30.0
USER_AGENT = "virtkit/0.1 (urllib)"
_DIGEST_HEX_LEN = {"sha256": 64, "sha512": 128}


def parse_checksum(text: str) -> tuple[str, str]:
    """``'sha256:HEX'`` / ``'sha512:HEX'`` -> (algorithm, lowercase hex digest)."""
    algo, sep, digest = text.strip().partition(":")
    algo, digest = algo.lower(), digest.strip().lower()
    want = _DIGEST_HEX_LEN.get(algo)
    if not sep or want is None:
        raise ConfigError(
            f"bad checksum {text!r}: write it as sha256:HEX or sha512:HEX "
            "(the hex digest from the distribution's SHA256SUMS / SHA512SUMS file)"
        )
    if len(digest) != want or any(c not in "0123456789abcdef" for c in digest):
        raise ConfigError(
            f"bad checksum {text!r}: a {algo} digest is {want} hex digits; "
            "copy it again from the distribution's checksum file"
        )
    return algo, digest


def check_scheme(url: str) -> None:
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise ConfigError(
            f"cannot download {url}: the {scheme or 'missing'} scheme is not supported; "
            "use an http:// or https:// URL, or download the file and give its local path"
        )


def http_error(url: str, exc: BaseException) -> Exception:
    """Map a urllib / socket failure to a virtkit error naming the URL and what to do."""
    if isinstance(exc, urllib.error.HTTPError):
        status = f"HTTP {exc.code} {exc.reason}"
        if exc.code in (404, 410):
            return NotFoundError(f"{url}: {status}; check the URL (is the path right?)")
        if 400 <= exc.code < 500:
            return ConfigError(f"{url}: {status}; check the URL and that it is public")
        return HostError(f"{url}: {status}; the server failed, try again later")
    if isinstance(exc, urllib.error.URLError):
        return HostError(f"cannot reach {url}: {exc.reason}; check the network and proxy")
    if isinstance(exc, TimeoutError | socket.timeout):
        return HostError(f"{url}: no answer within {TIMEOUT_S:.0f} s; check the network")
    if isinstance(exc, http.client.IncompleteRead):
        return HostError(
            f"{url}: the connection closed after {len(exc.partial)} bytes of the response; "
            "try again"
        )
    return HostError(f"{url}: download failed ({exc}); try again")


def open_url(url: str, *, method: str = "GET", timeout_s: float = TIMEOUT_S) -> IO[bytes]:
    """Open ``url`` (http/https only); errors become virtkit errors."""
    check_scheme(url)
    req = urllib.request.Request(url, method=method, headers={"User-Agent": USER_AGENT})
    try:
        resp: IO[bytes] = urllib.request.urlopen(req, timeout=timeout_s)
    except urllib.error.HTTPError as exc:
        exc.close()  # it holds the error response and its socket
        raise http_error(url, exc) from exc
    except (OSError, http.client.HTTPException) as exc:
        raise http_error(url, exc) from exc
    return resp


def url_exists(url: str) -> bool:
    """True when ``url`` answers 2xx to HEAD (or GET, for servers without HEAD)."""
    for method in ("HEAD", "GET"):
        try:
            with open_url(url, method=method):
                return True
        except NotFoundError:
            return False
        except ConfigError as exc:
            if "HTTP 405" not in exc.message and "HTTP 501" not in exc.message:
                return False
        except HostError as exc:
            if "HTTP 501" not in exc.message:
                raise
    return False


def fetch_text(url: str, *, limit: int = 1024 * 1024) -> str | None:
    """The body of a small text file, or None when the server says it does not exist."""
    try:
        with open_url(url) as resp:
            data = resp.read(limit + 1)
    except NotFoundError:
        return None
    except (OSError, http.client.HTTPException) as exc:
        raise http_error(url, exc) from exc
    if len(data) > limit:
        raise ConfigError(f"{url} is larger than {limit} bytes; is it really a text file?")
    return data.decode("utf-8", errors="replace")


def _content_length(resp: IO[bytes]) -> int | None:
    value = getattr(resp, "headers", {}).get("Content-Length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def download(
    url: str,
    dest: Path,
    *,
    checksum: str | None = None,
    progress: Progress | None = None,
    max_bytes: int = MAX_DOWNLOAD_BYTES,
    timeout_s: float = TIMEOUT_S,
) -> Path:
    """Download ``url`` to ``dest`` atomically; verify ``checksum`` before the rename.

    Raises ConfigError (bad URL or checksum, too large), NotFoundError (HTTP 404),
    HostError (network or server failure). ``progress(done, total)`` is called per chunk.
    """
    expected = parse_checksum(checksum) if checksum else None
    check_scheme(url)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            digest = _stream(url, out, expected, progress, max_bytes, timeout_s)
            out.flush()
            os.fsync(out.fileno())
        if expected is not None and digest != expected[1]:
            raise ConfigError(
                f"checksum mismatch for {url}: expected {expected[0]}:{expected[1]}, "
                f"got {expected[0]}:{digest}; the file was removed — check the checksum "
                "or download it again"
            )
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(dest.parent)
    return dest


def _stream(
    url: str,
    out: IO[bytes],
    expected: tuple[str, str] | None,
    progress: Progress | None,
    max_bytes: int,
    timeout_s: float,
) -> str:
    """Copy the response body to ``out``; return the hex digest (sha256 when none asked)."""
    hasher = hashlib.new(expected[0] if expected else "sha256")
    with open_url(url, timeout_s=timeout_s) as resp:
        total = _content_length(resp)
        if total is not None and total > max_bytes:
            raise ConfigError(
                f"{url} is {total} bytes, more than the {max_bytes}-byte limit; "
                "is this the right URL?"
            )
        done = 0
        if progress is not None:
            progress(0, total)
        while True:
            try:
                chunk = resp.read(CHUNK_BYTES)
            except (OSError, http.client.HTTPException) as exc:
                raise http_error(url, exc) from exc
            if not chunk:
                break
            done += len(chunk)
            if done > max_bytes:
                raise ConfigError(f"{url} exceeds the {max_bytes}-byte limit; aborted")
            hasher.update(chunk)
            out.write(chunk)
            if progress is not None:
                progress(done, total)
    if total is not None and done != total:
        raise HostError(f"{url}: the connection closed after {done} of {total} bytes; try again")
    return hasher.hexdigest()
