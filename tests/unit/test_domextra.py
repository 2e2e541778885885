"""Pure helpers of clone / save / block verbs: virt-clone's path rule, -incoming, tables."""

from __future__ import annotations

from pathlib import Path

from tests.golden.test_golden import DEFAULT_PATHS, caps
from virtkit.cli.domextra import human, table
from virtkit.daemon.domains.clone import auto_path
from virtkit.model.domain import Accel, Domain
from virtkit.qemu.argv import build_argv


def test_auto_path_follows_virt_clone(tmp_path: Path) -> None:
    d = str(tmp_path)
    taken: set[str] = set()
    # an image named after its domain takes the new name; others get -clone
    assert auto_path(f"{d}/web.qcow2", "web", "db", taken) == tmp_path / "db.qcow2"
    assert auto_path(f"{d}/data.img", "web", "db", taken) == tmp_path / "data-clone.img"
    (tmp_path / "disk-clone.raw").touch()
    assert auto_path(f"{d}/disk.raw", "web", "db", taken) == tmp_path / "disk-clone-1.raw"
    assert auto_path(f"{d}/data.img", "web", "db", taken) == tmp_path / "data-clone-1.img"
    assert auto_path(f"{d}/noext", "web", "db", taken) == tmp_path / "noext-clone"
    top = auto_path(f"{d}/web.img", "web", "db", taken, tag="overlay", suffix=".qcow2")
    assert top == tmp_path / "web-overlay.qcow2"


def test_incoming_fd_is_the_last_argument() -> None:
    dom = Domain(name="r", uuid="00000000-0000-4000-8000-000000000001")
    plain = build_argv(dom, caps(), DEFAULT_PATHS, Accel.TCG)
    argv = build_argv(dom, caps(), DEFAULT_PATHS, Accel.TCG, incoming_fd=7)
    assert argv == [*plain, "-incoming", "fd:7"]


def test_table_and_human() -> None:
    out = table(["Target", "Source"], [["vda", "/img/a.qcow2"], ["sda", "-"]])
    assert out.splitlines() == [
        " Target   Source",
        "-" * 22,  # the rule spans the table
        " vda      /img/a.qcow2",
        " sda      -",
        "",
    ]
    assert human(512) == "512.000 B"
    assert human(10 << 30) == "10.000 GiB"
