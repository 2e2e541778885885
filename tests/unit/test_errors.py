"""The error tree: one table to HTTP status and exit code; API bodies round-trip."""

from __future__ import annotations

from typing import Any

import pytest

from virtkit import errors
from virtkit.errors import (
    BY_CODE,
    EXIT_CODE,
    HTTP_STATUS,
    AuthError,
    BusyError,
    ConfigError,
    DaemonError,
    ForbiddenError,
    HostError,
    LaunchError,
    NotFoundError,
    QemuError,
    QmpError,
    StateError,
    VirtkitError,
    exit_code,
    from_dict,
    http_status,
)


def all_classes() -> list[type[VirtkitError]]:
    out: list[type[VirtkitError]] = [VirtkitError]
    todo = [VirtkitError]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub.__module__ == errors.__name__:
                out.append(sub)
                todo.append(sub)
    return out


EXPECTED = {
    VirtkitError: (500, 1, "error"),
    ConfigError: (400, 2, "config"),
    NotFoundError: (404, 3, "not-found"),
    StateError: (409, 4, "state"),
    BusyError: (409, 4, "busy"),
    HostError: (500, 5, "host"),
    DaemonError: (503, 6, "daemon"),
    AuthError: (401, 6, "auth"),
    ForbiddenError: (403, 2, "forbidden"),
    QemuError: (500, 7, "qemu"),
    LaunchError: (500, 7, "launch"),
    QmpError: (502, 7, "qmp"),
}


def make(cls: type[VirtkitError]) -> VirtkitError:
    if cls is LaunchError:
        return LaunchError("QEMU exited", exit_code=1, argv=["qemu"], log_tail="boom\n")
    if issubclass(cls, StateError):
        return cls("wrong state", current="shut off", required="running")
    return cls("something failed; do this next", hint="x")


def test_every_class_is_in_both_tables() -> None:
    classes = all_classes()
    assert set(classes) == set(EXPECTED)
    assert set(HTTP_STATUS) == set(classes)
    assert set(EXIT_CODE) == set(classes)


@pytest.mark.parametrize("cls", list(EXPECTED), ids=lambda c: c.__name__)
def test_status_exit_code_and_code(cls: type[VirtkitError]) -> None:
    status, code, name = EXPECTED[cls]
    err = make(cls)
    assert http_status(err) == status
    assert exit_code(err) == code
    assert err.code == name
    assert BY_CODE[name] is cls


def test_codes_are_unique() -> None:
    codes = [c.code for c in all_classes()]
    assert len(codes) == len(set(codes))


def test_subclass_outside_the_table_uses_its_parent() -> None:
    class ExtraConfigError(ConfigError):
        pass

    assert http_status(ExtraConfigError("x")) == 400
    assert exit_code(ExtraConfigError("x")) == 2


@pytest.mark.parametrize("cls", list(EXPECTED), ids=lambda c: c.__name__)
def test_from_dict_round_trip(cls: type[VirtkitError]) -> None:
    err = make(cls)
    body = err.to_dict()
    back = from_dict(body)
    assert type(back) is cls
    assert back.message == err.message
    assert back.details == err.details
    assert back.to_dict() == body
    assert str(back) == err.message


def test_to_dict_shape() -> None:
    assert ConfigError("bad").to_dict() == {"error": "config", "message": "bad"}
    assert StateError("no", current="shut off", required="running").to_dict() == {
        "error": "state",
        "message": "no",
        "details": {"current": "shut off", "required": "running"},
    }


@pytest.mark.parametrize(
    "body",
    [{}, {"error": "no-such-code", "message": "m"}, {"message": "m"}, {"error": 5}],
)
def test_from_dict_unknown_code_is_generic(body: dict[str, Any]) -> None:
    err = from_dict(body)
    assert type(err) is VirtkitError
    assert err.message == body.get("message", "unknown error")


def test_launch_error_carries_log_tail() -> None:
    err = LaunchError(
        "QEMU exited during start",
        exit_code=1,
        argv=["qemu", "-S"],
        log_tail="qemu: could not open disk\n",
    )
    assert err.message == "QEMU exited during start\nQEMU said:\nqemu: could not open disk"
    assert err.details == {
        "exit_code": 1,
        "argv": ["qemu", "-S"],
        "log_tail": "qemu: could not open disk\n",
    }
    assert err.exit_code == 1
    assert LaunchError("x", exit_code=None, argv=[], log_tail="  \n").message == "x"


def test_state_error_details() -> None:
    err = StateError("m", current="paused", required="running", op="shutdown")
    assert err.details == {"current": "paused", "required": "running", "op": "shutdown"}
    assert isinstance(BusyError("b"), StateError)
    assert isinstance(LaunchError("l", exit_code=None, argv=[], log_tail=""), QemuError)


@pytest.mark.parametrize("details", [None, "text", []])
def test_from_dict_tolerates_null_details(details: Any) -> None:
    err = from_dict({"error": "config", "message": "m", "details": details})
    assert type(err) is ConfigError
    assert err.details == {}
