"""Session mode: the first CLI call starts a per-user daemon; concurrent first calls
start exactly one; bad input to the CLI is a clear error that changes nothing."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import Daemon


@pytest.fixture
def session_env() -> Iterator[dict[str, str]]:
    base = Path(tempfile.mkdtemp(prefix="vks", dir="/tmp"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIRTKIT_")}
    env.update(HOME=str(base / "home"), XDG_RUNTIME_DIR=str(base / "xdg"),
               XDG_DATA_HOME=str(base / "home/.local/share"))  # fmt: skip
    (base / "xdg").mkdir(mode=0o700)
    try:
        yield env
    finally:
        pidfile = base / "xdg/virtkit/virtkitd.lock"
        if pidfile.exists() and pidfile.read_text().strip().isdigit():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pidfile.read_text()), signal.SIGTERM)
        shutil.rmtree(base, ignore_errors=True)


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "virtkit.cli", "-c", "virtkit:///session", *args],
                          env=env, capture_output=True, text=True, timeout=60)  # fmt: skip


def daemon_pids(env: dict[str, str]) -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            cmd = (p / "cmdline").read_bytes()
            environ = (p / "environ").read_bytes()
        except OSError:
            continue
        if b"virtkit.daemon" in cmd and env["XDG_RUNTIME_DIR"].encode() in environ:
            out.append(int(p.name))
    return out


def test_first_call_starts_the_session_daemon(session_env: dict[str, str]) -> None:
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: cli(session_env, "list", "--all"), range(4)))
    for r in results:
        assert r.returncode == 0, r.stderr
        assert "Id   Name   State" in r.stdout
    assert len(daemon_pids(session_env)) == 1  # four first calls, one daemon
    sock = Path(session_env["XDG_RUNTIME_DIR"]) / "virtkit/virtkitd.sock"
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600
    v = cli(session_env, "version")
    assert "session mode" in v.stdout
    assert Path(session_env["XDG_DATA_HOME"], "virtkit/virtkit.db").exists()


BAD_FILES = {
    "slash in name": ("name: a/b\n", "invalid domain name"),
    "dotdot": ("name: ..\n", "invalid domain name"),
    "leading dash": ("name: -x\n", "invalid domain name"),
    "newline": ('name: "a\\nb"\n', "invalid domain name"),
    "long name": (f"name: {'a' * 65}\n", "invalid domain name"),
    "zero memory": ("name: z\nmemory_mib: 0\n", "memory_mib"),
    "absurd memory": ("name: z\nmemory_mib: 9223372036854775807\n", "memory_mib"),
    "absurd vcpus": ("name: z\nvcpus: 100000\n", "vcpus"),
    "unknown field": ("name: z\nmemroy_mib: 512\n", "memroy_mib: unknown field"),
    "missing kernel": ("name: z\nboot:\n  kernel: /nonexistent/vmlinuz\n", "do not exist"),
    "not yaml": ("name: [\n", "not valid YAML"),
    "xml bomb": (
        '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
        "<domain><name>&b;</name></domain>",
        "",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_domain_files_change_nothing(daemon: Daemon, tmp_path: Path, case: str) -> None:
    text, expect = BAD_FILES[case]
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    before = daemon.cli("list", "--all").stdout
    r = daemon.cli("define", str(f), check=False)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert r.stderr.startswith("error: ") and expect in r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    assert daemon.cli("list", "--all").stdout == before


def test_duplicate_name_refused(daemon: Daemon, tmp_path: Path) -> None:
    f = tmp_path / "d.yaml"
    f.write_text("name: twice\nmemory_mib: 64\n")
    daemon.cli("define", str(f))
    r = daemon.cli("define", str(f), check=False)
    assert r.returncode == 2 and "already exists" in r.stderr
    assert daemon.cli("list", "--all").stdout.count("twice") == 1


def test_cli_usage_errors(daemon: Daemon) -> None:
    r = daemon.cli("define", "/nonexistent.yaml", check=False)
    assert r.returncode == 2 and "cannot read /nonexistent.yaml" in r.stderr
    r = daemon.cli("frobnicate", check=False)
    assert r.returncode == 2 and "invalid choice" in r.stderr
    r = daemon.cli("-c", "http://example.invalid/", "list", check=False)
    assert r.returncode == 2 and "unsupported connection URI" in r.stderr
