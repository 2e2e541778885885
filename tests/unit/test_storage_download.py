"""storage.download against a local HTTP server (127.0.0.1 only)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from virtkit.errors import ConfigError, HostError, NotFoundError
from virtkit.storage.download import download, fetch_text, parse_checksum, url_exists

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a directory, plus /broken (closes mid-body), /boom (500), /nolength."""

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_HEAD(self) -> None:
        if "nohead" in self.path:
            self.send_error(405, "No HEAD here")
            return
        super().do_HEAD()

    def do_GET(self) -> None:
        if self.path == "/broken":
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD[: len(PAYLOAD) // 4])
            self.wfile.flush()
            self.close_connection = True
            return
        if self.path == "/boom":
            self.send_error(500, "Kaputt")
            return
        if self.path == "/nolength":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(PAYLOAD)
            self.close_connection = True
            return
        super().do_GET()


@contextlib.contextmanager
def serve(root: Path) -> Iterator[str]:
    """An HTTP server for ``root`` on 127.0.0.1; yields its base URL."""
    handler = functools.partial(_Handler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[str]:
    root = tmp_path / "www"
    root.mkdir()
    (root / "file.bin").write_bytes(PAYLOAD)
    with serve(root) as url:
        yield url


@pytest.fixture
def out(tmp_path: Path) -> Path:
    d = tmp_path / "out"
    d.mkdir()
    return d


def _leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


def test_download_streams_with_progress(site: str, out: Path) -> None:
    seen: list[tuple[int, int | None]] = []
    dest = download(f"{site}/file.bin", out / "f.bin", progress=lambda d, t: seen.append((d, t)))
    assert dest.read_bytes() == PAYLOAD
    assert seen[0] == (0, len(PAYLOAD))
    assert seen[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert _leftovers(out) == ["f.bin"]


@pytest.mark.parametrize("algo", ["sha256", "sha512"])
def test_checksum_ok(site: str, out: Path, algo: str) -> None:
    digest = hashlib.new(algo, PAYLOAD).hexdigest()
    download(f"{site}/file.bin", out / "f.bin", checksum=f"{algo}:{digest.upper()}")
    assert (out / "f.bin").read_bytes() == PAYLOAD


def test_checksum_mismatch_removes_file(site: str, out: Path) -> None:
    wrong = "0" * 64
    with pytest.raises(ConfigError) as ei:
        download(f"{site}/file.bin", out / "f.bin", checksum=f"sha256:{wrong}")
    assert wrong in ei.value.message
    assert hashlib.sha256(PAYLOAD).hexdigest() in ei.value.message
    assert _leftovers(out) == []


def test_failed_download_keeps_the_old_file(site: str, out: Path) -> None:
    (out / "f.bin").write_bytes(b"old")
    with pytest.raises(ConfigError):
        download(f"{site}/file.bin", out / "f.bin", checksum="sha256:" + "1" * 64)
    assert (out / "f.bin").read_bytes() == b"old"
    assert _leftovers(out) == ["f.bin"]


@pytest.mark.parametrize(
    "text", ["md5:abc", "sha256", "sha256:xyz", "sha256:" + "0" * 63, "sha512:" + "0" * 64]
)
def test_bad_checksum_syntax(text: str) -> None:
    with pytest.raises(ConfigError, match=r"sha256:HEX|hex digits"):
        parse_checksum(text)


def test_interrupted_download_leaves_nothing(site: str, out: Path) -> None:
    with pytest.raises(HostError, match=r"connection closed|bytes"):
        download(f"{site}/broken", out / "f.bin")
    assert _leftovers(out) == []


def test_keyboard_interrupt_leaves_nothing(site: str, out: Path) -> None:
    def stop(done: int, total: int | None) -> None:
        if done > 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        download(f"{site}/file.bin", out / "f.bin", progress=stop)
    assert _leftovers(out) == []


def test_http_404_names_status_and_url(site: str, out: Path) -> None:
    with pytest.raises(NotFoundError) as ei:
        download(f"{site}/nope.iso", out / "f.bin")
    assert "404" in ei.value.message and f"{site}/nope.iso" in ei.value.message
    assert _leftovers(out) == []


def test_http_500(site: str, out: Path) -> None:
    with pytest.raises(HostError, match="HTTP 500"):
        download(f"{site}/boom", out / "f.bin")
    assert _leftovers(out) == []


def test_size_cap_from_content_length(site: str, out: Path) -> None:
    with pytest.raises(ConfigError, match="limit"):
        download(f"{site}/file.bin", out / "f.bin", max_bytes=1000)
    assert _leftovers(out) == []


def test_size_cap_while_streaming(site: str, out: Path) -> None:
    with pytest.raises(ConfigError, match="limit"):
        download(f"{site}/nolength", out / "f.bin", max_bytes=1000)
    assert _leftovers(out) == []


def test_unreachable_server(out: Path) -> None:
    with pytest.raises(HostError, match="cannot reach"):
        download("http://127.0.0.1:9/x.iso", out / "f.bin")
    assert _leftovers(out) == []


@pytest.mark.parametrize("url", ["ftp://example.org/x.iso", "file:///etc/passwd", "x.iso"])
def test_only_http(url: str, out: Path) -> None:
    with pytest.raises(ConfigError, match="not supported"):
        download(url, out / "f.bin")


def test_url_exists_and_fetch_text(site: str) -> None:
    assert url_exists(f"{site}/file.bin")
    assert url_exists(f"{site}/file.bin?nohead")  # HEAD refused: falls back to GET
    assert not url_exists(f"{site}/missing?nohead")
    assert not url_exists(f"{site}/missing")
    assert fetch_text(f"{site}/missing") is None
    with pytest.raises(ConfigError, match="larger than"):
        fetch_text(f"{site}/file.bin", limit=10)
