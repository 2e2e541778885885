"""Text output in virsh's shapes (plain text: these are parsed by scripts)."""

from __future__ import annotations

from typing import Any


def domain_table(rows: list[dict[str, Any]]) -> str:
    ids = [str(r["id"]) if r["id"] is not None else "-" for r in rows]
    names = [r["name"] for r in rows]
    w_id = max([2, *map(len, ids)])
    w_name = max([4, *map(len, names)])
    head = f" {'Id':<{w_id}}   {'Name':<{w_name}}   State"
    out = [head, "-" * (len(head) + 6)]
    for i, r in zip(ids, rows, strict=True):
        out.append(f" {i:<{w_id}}   {r['name']:<{w_name}}   {r['state']}")
    return "\n".join(out) + "\n\n"


def dominfo(d: dict[str, Any]) -> str:
    state = d["state"]
    if d["reason"] in ("crashed", "failed", "monitor not responding"):
        state = f"{state} ({d['reason']})"
    rows = [
        ("Id", str(d["id"]) if d["id"] is not None else "-"),
        ("Name", d["name"]),
        ("UUID", d["uuid"]),
        ("OS Type", "hvm"),
        ("State", state),
        ("CPU(s)", str(d["vcpus"])),
        ("Max CPU(s)", str(d["max_vcpus"])),
    ]
    if d["id"] is not None:
        rows.append(("CPU time", f"{d['cpu_time_s']:.1f}s"))
    rows += [
        ("Max memory", f"{d['max_memory_mib'] * 1024} KiB"),
        ("Used memory", f"{d['memory_mib'] * 1024} KiB"),
        ("Persistent", "yes" if d["persistent"] else "no"),
        ("Autostart", "enable" if d["autostart"] else "disable"),
        ("Managed save", "yes" if d.get("managed_save") else "no"),
        ("Security model", "none"),
        ("Security DOI", "0"),
        ("Machine", d["machine"]),
    ]
    if d.get("accel"):
        rows.append(("Accelerator", d["accel"]))
    if d.get("accel_note"):
        rows.append(("Accel note", d["accel_note"]))
    if d.get("confined"):
        note = d.get("confinement_note") or ""
        set_ = d.get("cgroup_limits") or {}
        limits = ", ".join(f"{k}={v}" for k, v in sorted(set_.items())) or "none"
        if note:
            limits += f" ({note})"
        rows += [("Confined", d["confined"]), ("Cgroup", d.get("cgroup") or "-"),
                 ("Cgroup limits", limits)]  # fmt: skip
    if d.get("tainted"):
        rows.append(("Tainted", ", ".join(d["tainted"])))
    if d.get("operation"):
        rows.append(("Operation", f"{d['operation']} (in progress)"))
    return "".join(f"{k + ':':<16}{v}\n" for k, v in rows) + "\n"
