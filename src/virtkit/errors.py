"""The one error tree of virtkit.

::

    VirtkitError                 500  exit 1   something went wrong; message says what to do
    ├── ConfigError              400  exit 2   bad input: names the field and the fix
    ├── NotFoundError            404  exit 3   no such domain / file / object
    ├── StateError               409  exit 4   wrong state: says current and required state
    │   └── BusyError            409  exit 4   another operation holds the domain's lock
    ├── HostError                500  exit 5   the host lacks something (QEMU, /dev/kvm, ...)
    ├── DaemonError              503  exit 6   the daemon cannot be reached or started
    ├── AuthError                401  exit 6   the browser listener wants a login first
    ├── ForbiddenError           403  exit 2   this connection's role may not do that
    └── QemuError                500  exit 7   QEMU misbehaved
        ├── LaunchError          500  exit 7   QEMU exited during start: exit code, argv, log tail
        └── QmpError             502  exit 7   a QMP command failed or timed out

Every error carries a ``code`` (stable, machine-readable, in API bodies) and a
message that ends with what the user can do next.  ``HTTP_STATUS`` and
``EXIT_CODE`` are the single table mapping classes to API status and CLI exit.
"""

from __future__ import annotations

from typing import Any


class VirtkitError(Exception):
    """Base of every error virtkit raises on purpose."""

    code = "error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


class ConfigError(VirtkitError):
    code = "config"


class NotFoundError(VirtkitError):
    code = "not-found"


class StateError(VirtkitError):
    """The object is in the wrong state; the message names current and required state."""

    code = "state"

    def __init__(self, message: str, *, current: str = "", required: str = "", **d: Any) -> None:
        super().__init__(message, **({"current": current, "required": required} | d))


class BusyError(StateError):
    code = "busy"


class HostError(VirtkitError):
    code = "host"


class DaemonError(VirtkitError):
    code = "daemon"


class AuthError(VirtkitError):
    """A request on the browser listener without a valid session (daemon/api/webgate.py)."""

    code = "auth"


class ForbiddenError(VirtkitError):
    """The caller's role (read-only socket, remote client) does not allow the request."""

    code = "forbidden"


class QemuError(VirtkitError):
    code = "qemu"


class LaunchError(QemuError):
    """QEMU did not come up. Carries exit code, argv and the tail of its log."""

    code = "launch"

    def __init__(
        self, message: str, *, exit_code: int | None, argv: list[str], log_tail: str
    ) -> None:
        full = message
        if log_tail.strip():
            full += "\nQEMU said:\n" + log_tail.rstrip()
        super().__init__(full, exit_code=exit_code, argv=argv, log_tail=log_tail)
        self.exit_code = exit_code
        self.argv = argv
        self.log_tail = log_tail


class QmpError(QemuError):
    code = "qmp"


HTTP_STATUS: dict[type[VirtkitError], int] = {
    ConfigError: 400,
    NotFoundError: 404,
    StateError: 409,
    BusyError: 409,
    HostError: 500,
    DaemonError: 503,
    AuthError: 401,
    ForbiddenError: 403,
    QemuError: 500,
    LaunchError: 500,
    QmpError: 502,
    VirtkitError: 500,
}

EXIT_CODE: dict[type[VirtkitError], int] = {
    ConfigError: 2,
    NotFoundError: 3,
    StateError: 4,
    BusyError: 4,
    HostError: 5,
    DaemonError: 6,
    AuthError: 6,
    ForbiddenError: 2,
    QemuError: 7,
    LaunchError: 7,
    QmpError: 7,
    VirtkitError: 1,
}

BY_CODE: dict[str, type[VirtkitError]] = {cls.code: cls for cls in HTTP_STATUS}


def _lookup(table: dict[type[VirtkitError], int], err: VirtkitError) -> int:
    for cls in type(err).__mro__:
        if cls in table:
            return table[cls]
    return table[VirtkitError]


def http_status(err: VirtkitError) -> int:
    return _lookup(HTTP_STATUS, err)


def exit_code(err: VirtkitError) -> int:
    return _lookup(EXIT_CODE, err)


def from_dict(body: dict[str, Any]) -> VirtkitError:
    """Rebuild an error received from the API (client side)."""
    cls = BY_CODE.get(str(body.get("error", "")), VirtkitError)
    err = VirtkitError.__new__(cls)
    details = body.get("details")  # the API schema allows null
    message = str(body.get("message", "unknown error"))
    VirtkitError.__init__(err, message, **(details if isinstance(details, dict) else {}))
    return err
