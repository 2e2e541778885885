"""Where things live: system mode (root) or session mode (per user), and URIs.

  system:  state /var/lib/virtkit, runtime /run/virtkit
  session: state $XDG_DATA_HOME/virtkit, runtime $XDG_RUNTIME_DIR/virtkit
           (or /tmp/virtkit-$UID)
Environment overrides (used by tests and by several daemons on one host):
VIRTKIT_STATE_DIR, VIRTKIT_RUN_DIR. Connection URIs: ``virtkit:///system``,
``virtkit:///session``, ``unix:///path/to/virtkitd.sock``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

from virtkit.errors import ConfigError


class Paths(NamedTuple):  # NamedTuple, not dataclass: the CLI imports this; keep it cheap
    mode: str  # "system" | "session"
    state_dir: Path
    run_dir: Path

    @property
    def socket(self) -> Path:
        return self.run_dir / "virtkitd.sock"

    @property
    def db(self) -> Path:
        return self.state_dir / "virtkit.db"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "log"

    @property
    def cache_dir(self) -> Path:
        return self.state_dir / "cache"

    @property
    def qemu_run_dir(self) -> Path:
        return self.run_dir / "qemu"

    @property
    def daemon_log(self) -> Path:
        return self.log_dir / "virtkitd.log"

    def domain_run_dir(self, uuid: str) -> Path:
        # uuid, not name: socket paths must stay under the 108-byte sun_path limit.
        return self.qemu_run_dir / uuid.replace("-", "")[:16]

    def ensure(self) -> None:
        # owner only: the store, logs and keys in it are the daemon's (statedir.py fixes
        # an older state directory's modes; the confined QEMU gets ACLs, confinement.py)
        for d in (self.state_dir, self.log_dir, self.cache_dir):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
        for d in (self.run_dir, self.qemu_run_dir):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)


def default_mode() -> str:
    return "system" if os.geteuid() == 0 else "session"


def paths_for(mode: str | None = None) -> Paths:
    mode = mode or default_mode()
    env_state = os.environ.get("VIRTKIT_STATE_DIR")
    env_run = os.environ.get("VIRTKIT_RUN_DIR")
    if mode == "system":
        state = Path(env_state or "/var/lib/virtkit")
        run = Path(env_run or "/run/virtkit")
    else:
        home = Path.home()
        data = Path(os.environ.get("XDG_DATA_HOME") or home / ".local/share")
        xdg_run = os.environ.get("XDG_RUNTIME_DIR")
        state = Path(env_state or data / "virtkit")
        run = Path(
            env_run or (Path(xdg_run) / "virtkit" if xdg_run else f"/tmp/virtkit-{os.getuid()}")
        )
    return Paths(mode, state, run)


def socket_for_uri(uri: str | None) -> tuple[Path, Paths | None]:
    """The API socket a URI names, and the Paths of a local daemon to auto-start (or None)."""
    if not uri:
        uri = os.environ.get("VIRTKIT_DEFAULT_URI", "")
    if not uri:
        p = paths_for()
        return p.socket, p
    parts = urlsplit(uri)
    if parts.scheme == "unix":
        return Path(parts.path), None
    if parts.scheme == "virtkit" and not parts.netloc and parts.path in ("/system", "/session"):
        p = paths_for(parts.path.strip("/"))
        return p.socket, p
    raise ConfigError(
        f"unsupported connection URI {uri!r}: use virtkit:///system, virtkit:///session "
        "or unix:///path/to/virtkitd.sock"
    )
