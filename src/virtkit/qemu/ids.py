"""QEMU ids of a domain's devices and backends: the ONE place they are spelled.

qemu/argv.py (the command line), the hot-plug code (daemon/hotplug/disks.py, hp_net.py) and
migration all name QEMU objects through these functions."""

from __future__ import annotations


def disk_node(target: str | None) -> str:
    """The format node of a disk (what its device's ``drive=`` names)."""
    return f"drive-{target}"


def disk_file_node(target: str | None) -> str:
    """The protocol (file / host_device) node under ``disk_node``."""
    return f"{disk_node(target)}-file"


def disk_device(i: int, target: str | None) -> str:
    return target or f"disk{i}"


def netdev(i: int) -> str:
    return f"net{i}"


def nic_device(i: int) -> str:
    return f"nic{i}"


def nic_index(dev_id: str) -> int | None:
    """``nic<i>`` -> i (None for any other id)."""
    if dev_id.startswith("nic") and dev_id[3:].isdigit():
        return int(dev_id[3:])
    return None
