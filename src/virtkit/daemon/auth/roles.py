"""Who is calling: the role of an API connection, and what each role may do.

  admin     the local read-write socket (root, or the ``virtkit`` group in system mode):
            everything, including raw QEMU arguments and raw monitor commands
            (which taint the domain);
  readonly  the local read-only socket (virtkitd-ro.sock): GET requests and the event
            stream only, for monitoring;
  remote    TLS clients with a certificate from the daemon's CA: everything except raw
            QEMU passthrough, and disk/ISO/kernel paths must lie in a storage pool.

The listener sets the role in the ASGI scope; ``ROLE`` carries it to the service
for the duration of a request (operations the daemon starts itself, like autostart,
run as admin).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from virtkit.errors import ForbiddenError
from virtkit.model.domain import Domain
from virtkit.model.install import is_placeholder

TYPE_CHECKING = False
if TYPE_CHECKING:
    from virtkit.daemon.service import Service
    from virtkit.model.install import InstallSpec

ADMIN, READONLY, REMOTE = "admin", "readonly", "remote"
ROLE: ContextVar[str] = ContextVar("virtkit_role", default=ADMIN)
SCOPE_KEY = "virtkit.role"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def role_of(scope: dict[str, Any]) -> str:
    return str(scope.get(SCOPE_KEY, ADMIN))


def require_admin(what: str) -> None:
    role = ROLE.get()
    if role != ADMIN:
        raise ForbiddenError(
            f"{what} is allowed only on the local administrator socket (this connection's "
            f"role is {role}); run it on the host as root or a member of the virtkit group"
        )


def taint_reasons(dom: Domain) -> set[str]:
    """Why a domain's configuration voids support (empty set: none)."""
    return {"custom-argv"} if dom.qemu_args else set()


def domain_paths(dom: Domain) -> list[str]:
    out = [d.path for d in dom.disks]
    out += [p for p in (dom.boot.kernel, dom.boot.initrd) if p]
    return out


def check_paths(paths: Iterable[str], allowed: list[Path]) -> None:
    """Remote role: every file must lie inside an allowed directory (a storage pool)."""
    if ROLE.get() != REMOTE:
        return
    roots = [os.path.realpath(a) for a in allowed]
    for p in paths:
        real = os.path.realpath(p)
        if not any(real == r or real.startswith(r.rstrip("/") + "/") for r in roots):
            raise ForbiddenError(
                f"{p} is outside every storage pool; remote clients may use only files in "
                "a pool (`virtkit pool-list` shows them; upload with `virtkit vol-upload`)"
            )


def check_domain(dom: Domain, allowed: list[Path]) -> None:
    """What a non-admin caller may not put in a definition."""
    if dom.qemu_args:
        require_admin("qemu_args (raw QEMU command-line arguments)")
    if ROLE.get() == REMOTE:
        if dom.emulator:
            require_admin("a custom emulator")
        if dom.hostdevs:
            require_admin("host device passthrough")
    check_paths(domain_paths(dom), allowed)


def allowed_dirs(svc: Service) -> list[Path]:
    """Where files of remote callers may be: the active pools and STATE/images."""
    return [*svc.pool_targets(), svc.paths.state_dir / "images"]


def check_install(svc: Service, spec: InstallSpec) -> None:
    """Remote installs: media, new disks and cloud-init files must be in pools."""
    if ROLE.get() != REMOTE:
        return
    allowed = allowed_dirs(svc)
    # pool volumes (vol=POOL/NAME, size=N without path=) are placed in a pool by the daemon
    disks = [d for d in spec.domain.disks if not is_placeholder(d.path)]
    check_domain(spec.domain.model_copy(update={"disks": disks}), allowed)
    paths = [p for p in (spec.cdrom, spec.location_kernel, spec.location_initrd) if p]
    if spec.location and "://" not in spec.location:
        paths.append(spec.location)
    paths += [*spec.initrd_inject, *(d.path for d in spec.new_disks if d.pool is None)]
    ci = spec.cloud_init
    if ci is not None:
        paths += [p for p in (ci.root_password_file, ci.user_data, ci.meta_data) if p]
    check_paths(paths, allowed)
