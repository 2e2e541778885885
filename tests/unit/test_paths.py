"""Where things live (system/session, env overrides) and connection URIs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from virtkit import paths as paths_mod
from virtkit.errors import ConfigError
from virtkit.paths import Paths, paths_for, socket_for_uri

ENV = (
    "VIRTKIT_STATE_DIR",
    "VIRTKIT_RUN_DIR",
    "XDG_DATA_HOME",
    "XDG_RUNTIME_DIR",
    "VIRTKIT_DEFAULT_URI",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def test_system_defaults() -> None:
    p = paths_for("system")
    assert p == Paths("system", Path("/var/lib/virtkit"), Path("/run/virtkit"))
    assert p.socket == Path("/run/virtkit/virtkitd.sock")
    assert p.db == Path("/var/lib/virtkit/virtkit.db")
    assert p.log_dir == Path("/var/lib/virtkit/log")
    assert p.cache_dir == Path("/var/lib/virtkit/cache")
    assert p.qemu_run_dir == Path("/run/virtkit/qemu")
    assert p.daemon_log == Path("/var/lib/virtkit/log/virtkitd.log")


def test_session_defaults_without_xdg(tmp_path: Path) -> None:
    p = paths_for("session")
    assert p.mode == "session"
    assert p.state_dir == tmp_path / "home/.local/share/virtkit"
    assert p.run_dir == Path(f"/tmp/virtkit-{os.getuid()}")


def test_session_uses_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    p = paths_for("session")
    assert p.state_dir == tmp_path / "data/virtkit"
    assert p.run_dir == tmp_path / "run/virtkit"
    assert p.socket == tmp_path / "run/virtkit/virtkitd.sock"


@pytest.mark.parametrize("mode", ["system", "session"])
def test_env_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mode: str) -> None:
    monkeypatch.setenv("VIRTKIT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("VIRTKIT_RUN_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    p = paths_for(mode)
    assert p == Paths(mode, tmp_path / "state", tmp_path / "run")


@pytest.mark.parametrize(("euid", "mode"), [(0, "system"), (1000, "session")])
def test_default_mode_follows_euid(monkeypatch: pytest.MonkeyPatch, euid: int, mode: str) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: euid)
    assert paths_mod.default_mode() == mode
    assert paths_for().mode == mode


def test_domain_run_dir_is_short() -> None:
    p = paths_for("system")
    d = p.domain_run_dir("6f9619ff-8b86-d011-b42d-00c04fc964ff")
    assert d == Path("/run/virtkit/qemu/6f9619ff8b86d011")
    assert len(str(d / "serial.sock")) < 108


def test_ensure_creates_dirs(tmp_path: Path) -> None:
    p = Paths("session", tmp_path / "s", tmp_path / "r")
    p.ensure()
    p.ensure()  # idempotent
    for d in (p.state_dir, p.log_dir, p.cache_dir, p.run_dir, p.qemu_run_dir):
        assert d.is_dir()
    assert (p.run_dir.stat().st_mode & 0o777) == 0o700
    assert (p.qemu_run_dir.stat().st_mode & 0o777) == 0o700


def test_uri_system_and_session(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    sock, p = socket_for_uri("virtkit:///system")
    assert sock == Path("/run/virtkit/virtkitd.sock")
    assert p is not None and p.mode == "system"
    sock, p = socket_for_uri("virtkit:///session")
    assert sock == tmp_path / "xdg/virtkit/virtkitd.sock"
    assert p is not None and p.mode == "session"


def test_uri_unix_socket() -> None:
    assert socket_for_uri("unix:///srv/virtkit/api.sock") == (Path("/srv/virtkit/api.sock"), None)


def test_uri_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    sock, p = socket_for_uri(None)
    assert sock == Path("/run/virtkit/virtkitd.sock")
    assert p is not None and p.mode == "system"
    assert socket_for_uri("")[0] == sock


def test_uri_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIRTKIT_DEFAULT_URI", "unix:///x/y.sock")
    assert socket_for_uri(None) == (Path("/x/y.sock"), None)


@pytest.mark.parametrize(
    "uri",
    [
        "qemu:///system",
        "virtkit:///other",
        "virtkit://host/system",
        "virtkit:///system/extra",
        "http://localhost/",
        "garbage",
        "/run/virtkit.sock",
    ],
)
def test_uri_errors(uri: str) -> None:
    with pytest.raises(ConfigError) as exc:
        socket_for_uri(uri)
    assert repr(uri) in exc.value.message
    assert "virtkit:///system" in exc.value.message
