"""Pure parts of migration: destination URIs, the job view from query-migrate, domjobinfo."""

from __future__ import annotations

import pytest

from virtkit.cli.migrate import progress_percent, render_job
from virtkit.daemon.migration.job import Job, JobType
from virtkit.daemon.migration.peer import parse_uri
from virtkit.errors import ConfigError, StateError


def test_destination_uris() -> None:
    a = parse_uri("unix:///run/other/virtkitd.sock")
    assert (a.socket, a.migration_host) == ("/run/other/virtkitd.sock", "127.0.0.1")
    t = parse_uri("virtkit+tcp://host.example:16600/system")
    assert (t.socket, t.host, t.port, t.migration_host) == (
        None, "host.example", 16600, "host.example",
    )  # fmt: skip
    assert parse_uri("virtkit+tcp://10.0.0.2/system").port == 16509
    s = parse_uri("virtkit+tls://10.0.0.2:16600/system?pki=/etc/vk/pki")
    assert (s.socket, s.port, s.tls_pki, s.migration_host) == (
        None, 16600, "/etc/vk/pki", "10.0.0.2",
    )  # fmt: skip
    for bad in ("qemu+ssh://h/system", "virtkit+tcp:///system", "virtkit+tcp://h/other"):
        with pytest.raises(ConfigError, match="URI"):
            parse_uri(bad)


QEMU_ACTIVE = {
    "status": "active", "expected-downtime": 12, "setup-time": 3, "total-time": 900,
    "ram": {"transferred": 30 << 20, "remaining": 10 << 20, "total": 256 << 20,
            "duplicate": 50000, "normal": 7000, "normal-bytes": 7000 * 4096, "mbps": 80.0,
            "dirty-pages-rate": 120, "dirty-sync-count": 1, "page-size": 4096},
}  # fmt: skip


def test_job_view_and_progress() -> None:
    job = Job("web", "unix:///x")
    job.qemu = QEMU_ACTIVE
    job.disks = {"vda": (8 << 20, 32 << 20)}
    v = job.view()
    assert v["type"] == "unbounded" and v["memory_processed_bytes"] == 30 << 20
    assert v["data_total_bytes"] == (256 + 32) << 20
    assert v["data_remaining_bytes"] == (10 + 24) << 20
    assert v["memory_bandwidth_bytes_s"] == 10_000_000
    assert progress_percent(v) == 100 - 34 * 100 // 288
    text = render_job(v)
    assert "Job type:         Unbounded\n" in text
    assert "Memory remaining: 10.000 MiB\n" in text
    assert "Expected downtime: 12" in text and "File total:       32.000 MiB" in text
    job.qemu = QEMU_ACTIVE | {"status": "completed", "downtime": 25}
    job.end(JobType.COMPLETED)
    v = job.view()
    assert progress_percent(v) == 100 and v["data_remaining_bytes"] == 0
    assert "Total downtime:   25" in render_job(v) and not job.active


def test_failed_job_keeps_the_error() -> None:
    job = Job("web", "unix:///x")
    job.end(JobType.CANCELLED, StateError("cancelled by domjobabort"))
    v = job.view()
    assert v["type"] == "cancelled" and v["error"]["message"] == "cancelled by domjobabort"
    assert "Job type:         Cancelled" in render_job(v)
    assert render_job(None) == "Job type:         None\n"


def test_layout_pins_devices_and_replugs_the_hot_plugged_ones() -> None:
    from virtkit.qemu.layout import Dimm, Layout, apply_layout, hotplugged

    argv = ["qemu", "-device", "virtio-blk-pci,drive=drive-vda,id=vda,serial=a,,b",
            "-device", "virtio-blk-pci,drive=drive-vdb,id=vdb,bootindex=2",
            "-device", "pcie-root-port,id=hp0,chassis=1", "-device", "isa-serial,id=serial0",
            "-incoming", "defer"]  # fmt: skip
    layout = Layout.from_mapping(Layout(
        pci={"vda": {"bus": "pcie.0", "addr": "03.0", "num-queues": "1"},
             "vdb": {"bus": "hp0", "addr": "00.0", "num-queues": "1", "vectors": "2"},
             "hp0": {"bus": "pcie.0", "addr": "01.0"}},
        dimms=[Dimm("dimm0", "mem-dimm0", 128 << 20, 1 << 32, 0)],
    ).to_mapping())  # fmt: skip
    cold, plugs = hotplugged(argv, layout)
    assert plugs == [{"driver": "virtio-blk-pci", "drive": "drive-vdb", "id": "vdb",
                      "bootindex": 2, "bus": "hp0", "addr": "00.0", "num-queues": 1,
                      "vectors": 2}]  # fmt: skip
    out = apply_layout(cold, layout)
    assert out == [
        "qemu", "-device",
        "virtio-blk-pci,drive=drive-vda,id=vda,serial=a,,b,bus=pcie.0,addr=03.0,num-queues=1",
        "-device", "pcie-root-port,id=hp0,chassis=1,bus=pcie.0,addr=01.0",
        "-device", "isa-serial,id=serial0",
        "-object", "memory-backend-ram,id=mem-dimm0,size=134217728",
        "-device", "pc-dimm,id=dimm0,memdev=mem-dimm0,addr=4294967296,slot=0,node=0",
        "-incoming", "defer",
    ]  # fmt: skip
