"""storage.cloudinit: NoCloud seed ISOs read back with pycdlib."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import pycdlib
import pytest
import yaml

from virtkit.errors import ConfigError
from virtkit.storage.cloudinit import generate_password, make_seed_iso

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE7 user@host"


def read_iso(path: Path) -> tuple[str, dict[str, dict[str, bytes]]]:
    """(volume id, {facility: {name: data}}) for the root files of an ISO."""
    iso = pycdlib.PyCdlib()
    iso.open(str(path))
    try:
        vol = iso.pvd.volume_identifier.decode().strip()
        out: dict[str, dict[str, bytes]] = {}
        for facility, prefix in (("rr_path", "/"), ("joliet_path", "/"), ("iso_path", "/")):
            files: dict[str, bytes] = {}
            for child in iso.list_children(**{facility: prefix}):
                if child.is_dot() or child.is_dotdot():
                    continue
                if facility == "rr_path":
                    name = child.rock_ridge.name().decode()
                elif facility == "joliet_path":
                    name = child.file_identifier().decode("utf-16-be")
                else:
                    name = child.file_identifier().decode()
                buf = io.BytesIO()
                iso.get_file_from_iso_fp(buf, **{facility: prefix + name})
                files[name] = buf.getvalue()
            out[facility] = files
        return vol, out
    finally:
        iso.close()


def _seed(tmp_path: Path, **kw: Any) -> Path:
    args: dict[str, Any] = {
        "hostname": "vm1", "instance_id": "iid-1234", "user_data": None, "meta_data": None,
        "root_password": None, "ssh_keys": [],
    }  # fmt: skip
    args.update(kw)
    return make_seed_iso(tmp_path / "seed.iso", **args)


def test_generated_seed(tmp_path: Path) -> None:
    path = _seed(tmp_path, root_password="s3cret:pw", ssh_keys=[KEY + "\n"])
    assert path == tmp_path / "seed.iso"
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["seed.iso"]
    vol, facilities = read_iso(path)
    assert vol == "cidata"
    rr, joliet = facilities["rr_path"], facilities["joliet_path"]
    assert set(rr) == set(joliet) == {"user-data", "meta-data"}
    assert rr == joliet
    user = rr["user-data"].decode()
    assert user.startswith("#cloud-config\n")
    config = yaml.safe_load(user)
    assert config["chpasswd"] == {"list": "root:s3cret:pw\n", "expire": False}
    assert config["ssh_authorized_keys"] == [KEY]
    assert config["disable_root"] is False
    meta = yaml.safe_load(rr["meta-data"])
    assert meta == {"instance-id": "iid-1234", "local-hostname": "vm1"}


def test_no_password_no_keys(tmp_path: Path) -> None:
    _, facilities = read_iso(_seed(tmp_path))
    config = yaml.safe_load(facilities["rr_path"]["user-data"])
    assert config == {"disable_root": False}


def test_password_expire(tmp_path: Path) -> None:
    _, facilities = read_iso(_seed(tmp_path, root_password="pw", password_expire=True))
    assert yaml.safe_load(facilities["rr_path"]["user-data"])["chpasswd"]["expire"] is True


def test_user_files_win(tmp_path: Path) -> None:
    user = "#cloud-config\npackages: [htop]\n"
    meta = "instance-id: mine\n"
    net = "version: 2\nethernets:\n  eth0:\n    dhcp4: true\n"
    path = _seed(
        tmp_path, user_data=user, meta_data=meta, network_config=net, root_password="ignored"
    )
    _, facilities = read_iso(path)
    rr = facilities["rr_path"]
    assert rr == {
        "user-data": user.encode(), "meta-data": meta.encode(), "network-config": net.encode()
    }  # fmt: skip
    assert set(facilities["iso_path"]) == {"USER_DATA.;1", "META_DATA.;1", "NETWORK_CONFIG.;1"}


def test_overwrites_atomically(tmp_path: Path) -> None:
    (tmp_path / "seed.iso").write_bytes(b"old")
    _seed(tmp_path)
    assert read_iso(tmp_path / "seed.iso")[0] == "cidata"
    assert [p.name for p in tmp_path.iterdir()] == ["seed.iso"]


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"root_password": "two\nlines"}, "one non-empty line"),
        ({"root_password": ""}, "one non-empty line"),
        ({"ssh_keys": ["ssh-rsa AAA a\nssh-rsa BBB b"]}, "single line"),
    ],
)
def test_bad_input(tmp_path: Path, kw: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match) as ei:
        _seed(tmp_path, **kw)
    assert "two\nlines" not in str(ei.value)
    assert list(tmp_path.iterdir()) == []


def test_password_never_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    password = generate_password()
    with caplog.at_level(logging.DEBUG):
        _seed(tmp_path, root_password=password)
    assert password not in caplog.text


def test_generate_password() -> None:
    passwords = {generate_password() for _ in range(50)}
    assert len(passwords) == 50
    for pw in passwords:
        assert len(pw) == 16 and pw.isascii() and pw.isalnum()


def test_disable_makes_cloud_init_run_once() -> None:
    """virt-install's disable=on (the default with a root password): after the first boot
    cloud-init switches itself off, so the password is not set again on later boots."""
    from virtkit.storage.cloudinit import default_user_data

    config = yaml.safe_load(default_user_data("pw", [], disable=True))
    assert config["runcmd"] == [["touch", "/etc/cloud/cloud-init.disabled"]]
    assert "runcmd" not in yaml.safe_load(default_user_data("pw", []))
