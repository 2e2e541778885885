"""Fetch and unpack Debian packages as an ordinary file tree.

Only ``apt-cache``, ``apt-get download`` and ``dpkg-deb -x`` are used: nothing is
installed, nothing is mounted.  Downloaded ``.deb`` files are kept in a cache
directory so rebuilds work offline.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from virtkit.errors import HostError

_INSTALL_HINT = "virtkit builds test guests from Debian packages; run it on Debian/Ubuntu"


def log(msg: str) -> None:
    print(f"virtkit.guests: {msg}", file=sys.stderr, flush=True)


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise HostError(f"{name} not found: install {package} ({_INSTALL_HINT})")
    return path


def run(
    argv: list[str], what: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> str:
    """Run ``argv``; its stdout, or a :class:`HostError` naming ``what`` with stderr's tail."""
    try:
        proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    except OSError as e:
        raise HostError(f"{what}: cannot run {argv[0]}: {e}") from e
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise HostError(
            f"{what} failed (exit {proc.returncode}): {' '.join(argv)}\n" + "\n".join(tail),
            argv=argv,
        )
    return proc.stdout


@dataclass(frozen=True)
class Package:
    name: str
    version: str

    @property
    def deb_name(self) -> str:
        """The file name ``apt-get download`` gives this package (epoch colon URL-encoded)."""
        return f"{self.name}_{self.version.replace(':', '%3a')}_amd64.deb"


def _candidate(name: str) -> str | None:
    out = run([_tool("apt-cache", "apt"), "policy", name], f"apt-cache policy {name}")
    m = re.search(r"^\s*Candidate:\s*(\S+)", out, re.M)
    if m is None or m.group(1) == "(none)":
        return None
    return m.group(1)


def _apt_update() -> None:
    log("package not known to apt-cache; running apt-get update")
    run([_tool("apt-get", "apt"), "update"], "apt-get update")


def resolve(name: str) -> Package:
    """The candidate version of ``name``; runs ``apt-get update`` once if apt knows nothing."""
    version = _candidate(name)
    if version is None:
        _apt_update()
        version = _candidate(name)
    if version is None:
        raise HostError(
            f"apt cannot find package {name}: enable the Debian main archive in "
            "/etc/apt/sources.list and run apt-get update"
        )
    return Package(name, version)


def depends_on(meta: str, prefix: str) -> str:
    """The first dependency of metapackage ``meta`` whose name starts with ``prefix``."""
    argv = [_tool("apt-cache", "apt"), "depends", meta]
    for attempt in range(2):
        try:
            out = run(argv, f"apt-cache depends {meta}")
        except HostError:
            out = ""
        for m in re.finditer(r"^\s*\|?Depends:\s*(\S+)", out, re.M):
            if m.group(1).startswith(prefix):
                return m.group(1)
        if attempt == 0:
            _apt_update()
    raise HostError(
        f"cannot resolve {meta} to a {prefix}* package with apt-cache depends: "
        "check /etc/apt/sources.list and run apt-get update"
    )


def download(pkg: Package, deb_dir: Path) -> Path:
    """``deb_dir/<pkg>.deb``, downloading it with ``apt-get download`` unless cached."""
    deb_dir.mkdir(parents=True, exist_ok=True)
    target = deb_dir / pkg.deb_name
    if target.exists():
        return target
    log(f"downloading {pkg.name} {pkg.version}")
    tmp = deb_dir / f".dl-{os.getpid()}-{pkg.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        argv = [_tool("apt-get", "apt"), "download", f"{pkg.name}={pkg.version}"]
        if os.geteuid() == 0:  # _apt cannot write into root's private cache dir
            argv[2:2] = ["-o", "APT::Sandbox::User=root"]
        run(argv, f"downloading {pkg.name}", cwd=tmp)
        debs = list(tmp.glob("*.deb"))
        if len(debs) != 1:
            raise HostError(f"apt-get download {pkg.name} produced {len(debs)} files, wanted 1")
        os.replace(debs[0], target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def extract(deb: Path, dest: Path) -> Path:
    """Unpack ``deb`` into ``dest`` with ``dpkg-deb -x``; returns ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    run([_tool("dpkg-deb", "dpkg"), "-x", str(deb), str(dest)], f"unpacking {deb.name}")
    return dest
