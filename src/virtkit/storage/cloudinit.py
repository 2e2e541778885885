"""cloud-init NoCloud seed ISOs (``--cloud-init``), written with pycdlib.

The seed is an ISO9660 image with volume id ``cidata`` holding ``user-data``,
``meta-data`` and optionally ``network-config``. It may hold a root password, so
it is written with mode 0600 and its content is never logged.
"""

from __future__ import annotations

import io
import os
import secrets
import string
import tempfile
from pathlib import Path
from typing import Any

import yaml

from virtkit.errors import ConfigError
from virtkit.fsutil import fsync_dir

VOLUME_ID = "cidata"
PASSWORD_ALPHABET = string.ascii_letters + string.digits
PASSWORD_LENGTH = 16


def generate_password(length: int = PASSWORD_LENGTH) -> str:
    """A random root password (letters and digits, like virt-install's)."""
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(length))


def default_user_data(
    root_password: str | None,
    ssh_keys: list[str],
    *,
    password_expire: bool = False,
    disable: bool = False,
) -> str:
    """``#cloud-config`` as virt-install writes it: root password and SSH keys."""
    config: dict[str, Any] = {}
    if root_password is not None:
        if "\n" in root_password or not root_password:
            raise ConfigError("the root password must be one non-empty line")
        config["chpasswd"] = {"list": f"root:{root_password}\n", "expire": password_expire}
    keys = [k.strip() for k in ssh_keys if k.strip()]
    if any("\n" in k for k in keys):
        raise ConfigError("an SSH public key must be a single line (one key per ssh-key= file)")
    if keys:
        config["ssh_authorized_keys"] = keys
    config["disable_root"] = False
    if disable:  # as virt-install: cloud-init does its job once
        config["runcmd"] = [["touch", "/etc/cloud/cloud-init.disabled"]]
    return "#cloud-config\n" + yaml.safe_dump(config, default_flow_style=False, sort_keys=False)


def default_meta_data(instance_id: str, hostname: str) -> str:
    return yaml.safe_dump(
        {"instance-id": instance_id, "local-hostname": hostname}, default_flow_style=False
    )


def seed_bytes(files: dict[str, bytes]) -> bytes:
    """An ISO (Joliet + Rock Ridge, volume ``cidata``) holding ``files`` at its root."""
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident=VOLUME_ID)
    try:
        for name, data in files.items():
            iso9660 = "/" + name.upper().replace("-", "_") + ".;1"
            iso.add_fp(io.BytesIO(data), len(data), iso9660, rr_name=name, joliet_path="/" + name)
        out = io.BytesIO()
        iso.write_fp(out)
    finally:
        iso.close()
    return out.getvalue()


def make_seed_iso(
    dest: Path,
    *,
    hostname: str,
    instance_id: str,
    user_data: str | None,
    meta_data: str | None,
    root_password: str | None,
    ssh_keys: list[str],
    network_config: str | None = None,
    password_expire: bool = False,
    disable: bool = False,
) -> Path:
    """Write a NoCloud seed ISO at ``dest`` (atomically, mode 0600) and return ``dest``.

    ``user_data``/``meta_data`` given by the user win; otherwise they are generated
    (root password via ``chpasswd``, keys via ``ssh_authorized_keys``, ``disable_root: false``).
    """
    if user_data is None:
        user_data = default_user_data(
            root_password, ssh_keys, password_expire=password_expire, disable=disable
        )
    if meta_data is None:
        meta_data = default_meta_data(instance_id, hostname)
    files = {"user-data": user_data.encode(), "meta-data": meta_data.encode()}
    if network_config is not None:
        files["network-config"] = network_config.encode()
    _write_private(dest, seed_bytes(files))
    return dest


def _write_private(dest: Path, data: bytes) -> None:
    """Write-temp (0600 from mkstemp), fsync, rename, fsync-dir."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(dest.parent)
