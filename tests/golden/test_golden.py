"""Golden tests: domain -> QEMU argv, against a captured capability fixture.

Each ``<case>.toml`` here holds ``[domain]`` (a domain mapping with fixed uuid and
MACs), optional ``accel = "tcg" | "kvm"`` (default tcg) and optional ``[paths]``
(the run paths); ``<case>.args`` is the expected argv, one element per line.

    VIRTKIT_REGEN_GOLDEN=1 pytest tests/golden     # rewrite the .args files

The capability fixture was captured once from the real QEMU 7.2 with
``virtkit.qemu.caps.probe`` (``Caps.to_json``), so these tests need no QEMU.
"""

from __future__ import annotations

import json
import os
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from virtkit.errors import ConfigError
from virtkit.formats.domfile import domain_from_mapping
from virtkit.model.domain import Accel, Domain
from virtkit.qemu.argv import RunPaths, build_argv, opts
from virtkit.qemu.caps import Caps

HERE = Path(__file__).parent
CASES = sorted(p.stem for p in HERE.glob("*.toml"))
REGEN = os.environ.get("VIRTKIT_REGEN_GOLDEN") == "1"

DEFAULT_PATHS = RunPaths(
    qmp="/run/virtkit/qemu/0000000000004000/qmp.sock",
    serial="/run/virtkit/qemu/0000000000004000/serial.sock",
    pidfile="/run/virtkit/qemu/0000000000004000/qemu.pid",
    console_log="/var/lib/virtkit/log/golden.console.log",
)


@cache
def caps() -> Caps:
    return Caps.from_json(json.loads((HERE / "caps-qemu-7.2.json").read_text()))


def load_case(case: str) -> tuple[Domain, RunPaths, Accel]:
    data = tomllib.loads((HERE / f"{case}.toml").read_text())
    unknown = set(data) - {"domain", "accel", "paths"}
    assert not unknown, f"{case}.toml: unknown top-level keys {sorted(unknown)}"
    dom = domain_from_mapping(data["domain"], f"{case}.toml")
    paths = RunPaths(**data["paths"]) if "paths" in data else DEFAULT_PATHS
    return dom, paths, Accel(data.get("accel", "tcg"))


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 10


def test_fixture_is_qemu_7_2() -> None:
    c = caps()
    assert c.version.startswith("7.2.")
    assert c.aliases["q35"].startswith("pc-q35-")
    assert c.aliases["pc"].startswith("pc-i440fx-")
    assert {"max", "qemu64", "Skylake-Client"} <= c.cpu_models
    assert {"virtio-blk-pci", "virtio-net-pci", "e1000", "virtio-scsi-pci"} <= c.devices
    assert Caps.from_json(c.to_json()) == c


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str) -> None:
    dom, paths, accel = load_case(case)
    # Fixed uuid and MACs: the case must not depend on normalize()'s random sources.
    assert dom.uuid is not None, f"{case}.toml: give the domain a fixed uuid"
    assert all(n.mac for n in dom.nics), f"{case}.toml: give every NIC a fixed mac"
    argv = build_argv(dom, caps(), paths, accel)
    assert all("\n" not in a for a in argv)
    expected_file = HERE / f"{case}.args"
    got = "\n".join(argv) + "\n"
    if REGEN:
        expected_file.write_text(got)
        return
    assert expected_file.exists(), f"missing {expected_file.name}; run VIRTKIT_REGEN_GOLDEN=1"
    assert got.splitlines() == expected_file.read_text().splitlines(), (
        f"argv for {case} changed; if intended, run VIRTKIT_REGEN_GOLDEN=1 pytest tests/golden"
    )


def test_every_args_file_has_a_case() -> None:
    orphans = sorted(p.stem for p in HERE.glob("*.args") if p.stem not in CASES)
    assert not orphans


# -- pinned properties of some cases (so a regenerated .args cannot silently lose them) ----


def argv_of(case: str) -> list[str]:
    dom, paths, accel = load_case(case)
    return build_argv(dom, caps(), paths, accel)


def after(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == flag]


def test_safety_options_always_present() -> None:
    for case in CASES:
        argv = argv_of(case)
        for flag in ("-nodefaults", "-no-user-config", "-S", "-no-shutdown"):
            assert flag in argv, (case, flag)
        assert after(argv, "-sandbox")[0].startswith("on,")
        assert argv[0] == caps().binary


def test_kvm_cpu_auto_is_host() -> None:
    argv = argv_of("kvm-cpu-host")
    assert after(argv, "-cpu") == ["host"]
    assert after(argv, "-machine") == ["pc-q35-7.2,accel=kvm"]


def test_tcg_cpu_auto_is_max() -> None:
    assert after(argv_of("minimal-tcg"), "-cpu") == ["max"]


def test_cmdline_verbatim_and_paths_escaped() -> None:
    argv = argv_of("direct-kernel")
    assert after(argv, "-append") == [
        "console=ttyS0,115200n8 quiet panic=-1 virtkit.markers=boot,shutdown"
    ]
    assert after(argv, "-kernel") == ["/var/cache/virtkit/vmlinuz-6.1"]
    assert after(argv, "-initrd") == ["/var/cache/virtkit/initrd.img"]
    chardevs = after(argv, "-chardev")
    assert "path=/run/virtkit/qemu/a,,b/qmp.sock" in chardevs[0]
    assert "logfile=/var/lib/virtkit/log/tiny,,1.console.log" in chardevs[1]
    assert after(argv, "-pidfile") == ["/run/virtkit/qemu/a,b/qemu.pid"]


def test_boot_order_cdrom_first() -> None:
    devices = after(argv_of("cdrom-install"), "-device")
    cd = next(d for d in devices if d.startswith("ide-cd"))
    hd = next(d for d in devices if d.startswith("virtio-blk-pci"))
    assert cd.endswith(",bootindex=1")
    assert hd.endswith(",bootindex=2")


def test_hotplug_limits() -> None:
    argv = argv_of("hotplug-limits")
    assert after(argv, "-smp") == ["1,maxcpus=2"]
    assert after(argv, "-m") == ["size=512M,slots=16,maxmem=1024M"]


def test_no_reboot_only_when_asked() -> None:
    assert "-no-reboot" in argv_of("no-reboot")
    assert "-no-reboot" not in argv_of("minimal-tcg")


def test_cache_modes() -> None:
    blockdevs = after(argv_of("cache-modes"), "-blockdev")
    assert len(blockdevs) == 6
    none_file, none_fmt, unsafe_file, unsafe_fmt, wb_file, wb_fmt = blockdevs
    for b in (none_file, none_fmt):
        assert "cache.direct=on,cache.no-flush=off" in b
    for b in (unsafe_file, unsafe_fmt):
        assert "cache.direct=off,cache.no-flush=on" in b
    for b in (wb_file, wb_fmt):
        assert "cache.direct=off,cache.no-flush=off" in b
        assert "read-only=on" in b


def test_comma_in_disk_path() -> None:
    blockdevs = after(argv_of("comma-paths"), "-blockdev")
    assert "filename=/srv/images/a,,b.qcow2," in blockdevs[0]


# -- purity -------------------------------------------------------------------------------


def test_build_argv_is_pure(monkeypatch: pytest.MonkeyPatch) -> None:
    for case in CASES:
        dom, paths, accel = load_case(case)
        snapshot = dom.model_dump()
        first = build_argv(dom, caps(), paths, accel)
        monkeypatch.setenv("TZ", "Pacific/Kiritimati")
        monkeypatch.setenv("QEMU_AUDIO_DRV", "none")
        monkeypatch.setenv("HOME", "/nonexistent")
        monkeypatch.chdir("/")
        second = build_argv(dom, caps(), paths, accel)
        monkeypatch.undo()
        assert first == second, case
        assert dom.model_dump() == snapshot, case
        assert first is not second


def test_build_argv_does_not_touch_os_or_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    import random
    import time
    import uuid

    def forbidden(*_: Any, **__: Any) -> Any:
        raise AssertionError("build_argv must be pure")

    dom, paths, accel = load_case("cdrom-install")
    expected = build_argv(dom, caps(), paths, accel)
    for mod, names in (
        (os, ["stat", "listdir", "getenv", "urandom", "getpid", "access", "open", "scandir"]),
        (time, ["time", "monotonic", "time_ns", "localtime", "gmtime"]),
        (random, ["random", "randint", "getrandbits"]),
        (uuid, ["uuid4", "uuid1"]),
    ):
        for name in names:
            monkeypatch.setattr(mod, name, forbidden)
    monkeypatch.setattr(os, "environ", {})
    assert build_argv(dom, caps(), paths, accel) == expected


def test_auto_accel_is_refused() -> None:
    dom, paths, _ = load_case("minimal-tcg")
    with pytest.raises(ValueError, match="resolved accelerator"):
        build_argv(dom, caps(), paths, Accel.AUTO)


def test_opts_doubles_commas_in_values_only() -> None:
    assert opts("socket", id="x", path="/a,b", server=True, wait=False) == (
        "socket,id=x,path=/a,,b,server=on,wait=off"
    )
    assert opts(node_name="n", read_only=True, port=5) == "node-name=n,read-only=on,port=5"


# -- errors -------------------------------------------------------------------------------


def domain(**kw: Any) -> Domain:
    base: dict[str, Any] = {"name": "bad", "uuid": "00000000-0000-4000-8000-0000000000ff"}
    return domain_from_mapping(base | kw)


def argv_error(dom: Domain, accel: Accel = Accel.TCG) -> str:
    with pytest.raises(ConfigError) as exc:
        build_argv(dom, caps(), DEFAULT_PATHS, accel)
    return exc.value.message


def test_unknown_machine_lists_q35() -> None:
    msg = argv_error(domain(machine="pc-q35-99.0"))
    assert "'pc-q35-99.0' is not supported by QEMU 7.2" in msg
    assert "q35" in msg.split("try one of:")[1]


def test_full_machine_name_is_accepted() -> None:
    argv = build_argv(domain(machine="pc-q35-7.2"), caps(), DEFAULT_PATHS, Accel.TCG)
    assert after(argv, "-machine") == ["pc-q35-7.2,accel=tcg"]


def test_too_many_vcpus_for_the_machine() -> None:
    cpu_max = caps().resolve_machine("q35").cpu_max  # type: ignore[union-attr]
    msg = argv_error(domain(vcpus=1, max_vcpus=cpu_max + 1))
    assert f"{cpu_max + 1} vCPUs exceed machine pc-q35-7.2's limit of {cpu_max}" in msg
    assert "limit of 1" in argv_error(domain(machine="isapc", vcpus=2))


def test_cpu_host_needs_kvm() -> None:
    msg = argv_error(domain(cpu_model="host"), Accel.TCG)
    assert "needs KVM" in msg
    assert "cpu_model: max" in msg
    argv = build_argv(domain(cpu_model="host"), caps(), DEFAULT_PATHS, Accel.KVM)
    assert after(argv, "-cpu") == ["host"]


def test_unknown_cpu_model() -> None:
    msg = argv_error(domain(cpu_model="Pentium-9000"))
    assert "'Pentium-9000' is unknown to QEMU 7.2" in msg


def test_cpu_model_with_options_is_not_passed_through() -> None:
    assert "unknown to QEMU" in argv_error(domain(cpu_model="max,+vmx"))
