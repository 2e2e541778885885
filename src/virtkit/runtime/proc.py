"""Process identity: a pid alone is not a process (pids are reused).

A QEMU we started is identified by pid + kernel start time (/proc/PID/stat
field 22) + a marker in its command line (its QMP socket path).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path


def start_time(pid: int, proc: Path = Path("/proc")) -> int | None:
    """Kernel start time of ``pid`` in clock ticks since boot, or None if it is gone."""
    try:
        raw = (proc / str(pid) / "stat").read_bytes()
    except OSError:
        return None
    # comm (field 2) may contain spaces and parentheses: split after the last ')'.
    rest = raw[raw.rfind(b")") + 2 :].split()
    try:
        if rest[0] == b"Z":
            return None  # a zombie is as good as gone
        return int(rest[19])
    except (IndexError, ValueError):
        return None


def cmdline(pid: int, proc: Path = Path("/proc")) -> list[str]:
    try:
        raw = (proc / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def is_same_process(pid: int, start: int, marker: str, proc: Path = Path("/proc")) -> bool:
    """True if ``pid`` is still the process that started at ``start`` and has ``marker``."""
    if start_time(pid, proc) != start:
        return False
    return any(marker in arg for arg in cmdline(pid, proc))


def pids_with_marker(marker: str, proc: Path = Path("/proc")) -> list[int]:
    """Live processes with ``marker`` in their command line (a QEMU by its QMP path)."""
    out = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or start_time(int(entry.name), proc) is None:
            continue
        if any(marker in arg for arg in cmdline(int(entry.name), proc)):
            out.append(int(entry.name))
    return out


def kill(pid: int, sig: signal.Signals) -> bool:
    try:
        os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False


def cpu_time_s(pid: int, proc: Path = Path("/proc")) -> float:
    """User+system CPU time of ``pid`` in seconds (0.0 if gone)."""
    try:
        raw = (proc / str(pid) / "stat").read_bytes()
    except OSError:
        return 0.0
    rest = raw[raw.rfind(b")") + 2 :].split()
    try:
        ticks = int(rest[11]) + int(rest[12])
    except (IndexError, ValueError):
        return 0.0
    return ticks / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int, proc: Path = Path("/proc")) -> int:
    try:
        for line in (proc / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0
