"""Domain runtime states, with virsh's words as values."""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    SHUTOFF = "shut off"
    IN_SHUTDOWN = "in shutdown"
    UNKNOWN = "unknown"  # QEMU is alive but its monitor does not answer


class Reason(StrEnum):
    """Why a domain is in its state (virsh domstate --reason)."""

    BOOTED = "booted"
    UNPAUSED = "unpaused"
    RESUMED = "resumed"
    USER = "user"
    STARTING = "starting up"
    SHUTDOWN = "shutdown"
    DESTROYED = "destroyed"
    CRASHED = "crashed"
    FAILED = "failed"
    UNKNOWN = "unknown"
    NO_MONITOR = "monitor not responding"
    IO_ERROR = "I/O error"
    GUEST_PANIC = "panicked"
    MIGRATED = "migrated"
    SAVED = "saved"  # shut off: the state is in a save file (save / managedsave)
    RESTORED = "restored"  # running: resumed from a save file


ACTIVE_STATES = frozenset({State.RUNNING, State.PAUSED, State.IN_SHUTDOWN, State.UNKNOWN})
