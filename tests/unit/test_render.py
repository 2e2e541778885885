"""Plain-text output in virsh's shapes (scripts parse these)."""

from __future__ import annotations

from typing import Any

from virtkit.cli.render import domain_table, dominfo

ROWS: list[dict[str, Any]] = [
    {"id": 1, "name": "kvm-server", "state": "running"},
    {"id": 12, "name": "web", "state": "paused"},
    {"id": None, "name": "db", "state": "shut off"},
]


def test_list_table_like_virsh() -> None:
    assert domain_table(ROWS) == (
        " Id   Name         State\n"
        "------------------------------\n"
        " 1    kvm-server   running\n"
        " 12   web          paused\n"
        " -    db           shut off\n"
        "\n"
    )


def test_list_table_columns_line_up() -> None:
    long = [*ROWS, {"id": 1234, "name": "a" * 40, "state": "in shutdown"}]
    lines = domain_table(long).split("\n")
    head, sep, body = lines[0], lines[1], lines[2:-2]
    assert set(sep) == {"-"}
    assert len(sep) >= len(head)
    name_col, state_col = head.index("Name"), head.index("State")
    for line, row in zip(body, long, strict=True):
        assert line[name_col:].startswith(row["name"])
        assert line[state_col:] == row["state"]
        assert line[:name_col].strip() == (str(row["id"]) if row["id"] is not None else "-")
    assert lines[-2:] == ["", ""]


def test_empty_list() -> None:
    assert domain_table([]) == " Id   Name   State\n------------------------\n\n"


INFO: dict[str, Any] = {
    "id": 3,
    "name": "kvm-server",
    "uuid": "00000000-0000-4000-8000-000000000001",
    "state": "running",
    "reason": "booted",
    "autostart": True,
    "persistent": True,
    "vcpus": 1,
    "max_vcpus": 2,
    "memory_mib": 512,
    "max_memory_mib": 1024,
    "cpu_time_s": 12.345,
    "rss_kib": 100000,
    "accel": "tcg",
    "accel_note": "running under TCG",
    "pid": 4242,
    "machine": "q35",
    "operation": None,
}


def test_dominfo_running() -> None:
    assert dominfo(INFO) == (
        "Id:             3\n"
        "Name:           kvm-server\n"
        "UUID:           00000000-0000-4000-8000-000000000001\n"
        "OS Type:        hvm\n"
        "State:          running\n"
        "CPU(s):         1\n"
        "Max CPU(s):     2\n"
        "CPU time:       12.3s\n"
        "Max memory:     1048576 KiB\n"
        "Used memory:    524288 KiB\n"
        "Persistent:     yes\n"
        "Autostart:      enable\n"
        "Managed save:   no\n"
        "Security model: none\n"
        "Security DOI:   0\n"
        "Machine:        q35\n"
        "Accelerator:    tcg\n"
        "Accel note:     running under TCG\n"
        "\n"
    )


def test_dominfo_shut_off_crashed() -> None:
    d = INFO | {
        "id": None,
        "state": "shut off",
        "reason": "crashed",
        "autostart": False,
        "accel": None,
        "accel_note": "",
        "pid": None,
        "operation": "start",
    }
    text = dominfo(d)
    fields = dict(line.split(":", 1) for line in text.strip().split("\n"))
    assert fields["Id"].strip() == "-"
    assert fields["State"].strip() == "shut off (crashed)"
    assert fields["Autostart"].strip() == "disable"
    assert fields["Operation"].strip() == "start (in progress)"
    assert "CPU time" not in fields
    assert "Accelerator" not in fields
    # Values start in column 16, after the label and its colon, as in virsh.
    for line in text.strip().split("\n"):
        assert line[:16].rstrip().endswith(":")
        assert line[16] != " "


def test_dominfo_plain_reason_is_not_shown() -> None:
    d = INFO | {"id": None, "state": "shut off", "reason": "destroyed"}
    assert "State:          shut off\n" in dominfo(d)
