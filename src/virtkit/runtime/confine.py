"""Confinement of a QEMU process in system mode: an unprivileged user, no capabilities.

QEMU is started through two tiny exec steps, so nothing runs in the forked child
before ``exec`` (no ``preexec_fn``):

  /bin/sh -c 'umask 0177; echo $$ > CGROUP/cgroup.procs...; exec "$@"'   (still root)
    setpriv --reuid U --regid G --groups ... --inh-caps=-all --ambient-caps=-all
            --bounding-set=-all --no-new-privs --                     (drops everything)
      qemu-system-x86_64 ...                                          (same pid throughout)

The shell joins the domain's cgroups (v2, and v1 ones on hybrid hosts) before QEMU
exists (so every page and thread is accounted), and its umask makes QEMU's sockets
and files 0600. ``setpriv`` (util-linux) sets uid/gid, clears the capability sets
including the bounding set and sets no_new_privs; after exec QEMU's CapEff/CapPrm/CapBnd are all 0.
QEMU's own ``-sandbox`` (seccomp) then filters its system calls.
"""

from __future__ import annotations

import os
import pwd
import shutil
from dataclasses import dataclass

from virtkit.errors import HostError

WRAPPER = (
    "unset PWD OLDPWD; umask 0177; "
    'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'
)


@dataclass(frozen=True)
class QemuUser:
    name: str
    uid: int
    gid: int
    groups: tuple[int, ...] = ()  # supplementary groups (the group of /dev/kvm)


def kvm_groups(kvm_dev: str = "/dev/kvm") -> tuple[int, ...]:
    """The supplementary group a QEMU needs for /dev/kvm (its group, when not root's)."""
    try:
        kvm_gid = os.stat(kvm_dev).st_gid
    except OSError:
        return ()
    return (kvm_gid,) if kvm_gid != 0 else ()


def lookup_user(name: str, kvm_dev: str = "/dev/kvm") -> QemuUser:
    """The unprivileged account QEMU runs as, or HostError saying how to create it."""
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        raise HostError(
            f"the QEMU user {name!r} does not exist; run scripts/setup (or "
            f"`useradd --system --no-create-home --shell /usr/sbin/nologin {name}`), "
            "or name another account with VIRTKIT_QEMU_USER"
        ) from None
    if pw.pw_uid == 0:
        raise HostError(f"the QEMU user {name!r} is root; name an unprivileged account")
    return QemuUser(name, pw.pw_uid, pw.pw_gid, kvm_groups(kvm_dev))


def setpriv_binary() -> str:
    found = shutil.which("setpriv", path="/usr/bin:/bin:/usr/sbin:/sbin")
    if not found:
        raise HostError("setpriv was not found: install util-linux (apt-get install util-linux)")
    return found


def wrapper_argv(user: QemuUser, cgroup_procs: tuple[str, ...], setpriv: str) -> list[str]:
    """The command prefix that starts QEMU as ``user`` inside its cgroups (if any)."""
    groups = ",".join(str(g) for g in user.groups)
    return [
        "/bin/sh", "-c", WRAPPER, "virtkit-confine", *cgroup_procs, "--",
        setpriv, f"--reuid={user.uid}", f"--regid={user.gid}",
        f"--groups={groups}" if groups else "--clear-groups",
        "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", "--no-new-privs",
        "--",
    ]  # fmt: skip
