"""`virtkit install`: virt-install's command line, carried out by the daemon.

Parse (formats/virtinstall.py, pure), then one API call that runs the whole job
in the daemon with a revert stack; download progress arrives as events and is
drawn as a progress bar. Then, like virt-install: attach the serial console
(and re-attach when the installed system restarts from disk), or return at once
with --noautoconsole, or wait with --wait.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

from virtkit.errors import VirtkitError


def run_install(argv: list[str], uri: str | None) -> int:
    from virtkit.client.client import Client
    from virtkit.formats.virtinstall import parse_install_args

    parsed = parse_install_args(argv, unprivileged=os.geteuid() != 0)
    for w in parsed.warnings:
        print(f"WARNING  {w}", file=sys.stderr)
    spec = parsed.spec
    name = spec.domain.name
    if parsed.print_xml:
        from virtkit.formats.libvirt_xml import domain_to_xml

        sys.stdout.write(domain_to_xml(spec.domain))
        return 0
    client = Client(uri)
    body = {"spec": spec.model_dump(mode="json", exclude_defaults=True),
            "dry_run": parsed.dry_run}  # fmt: skip
    print("\nStarting install...", file=sys.stderr)
    seq = _last_seq(client)
    stop = threading.Event()
    watcher = threading.Thread(target=_progress, args=(uri, name, seq, stop), daemon=True)
    watcher.start()
    try:
        res = client.request("POST", "/v1/install", body)
    finally:
        stop.set()
        watcher.join(2)
    if parsed.dry_run:
        print("Dry run completed successfully")
        return 0
    for path in res.get("created", []):
        print(f"Created disk {path}", file=sys.stderr)
    if res.get("root_password"):
        print(f"Password for first root login is: {res['root_password']}")
    print(f"Creating domain... Domain '{name}' started", file=sys.stderr)
    if spec.autoconsole and spec.domain.graphics.type.value == "none":
        return _follow_console(client, name, res.get("install_boot", False))
    if spec.wait_minutes is not None and res.get("install_boot"):
        return _wait_install(client, name, spec.wait_minutes)
    if res.get("install_boot"):
        print("Domain is still running. Installation may be in progress.")
        print(f"You can reconnect to the console with: virtkit console {name}")
    return 0


def _last_seq(client: Any) -> int:
    seq = 0
    while True:
        evs = client.events(seq)
        if not evs:
            return seq
        seq = evs[-1]["seq"]


def _progress(uri: str | None, name: str, after: int, stop: threading.Event) -> None:
    """Draw download progress from the daemon's 'progress' events."""
    from virtkit.client.client import Client

    c = Client(uri, autostart=False)
    bar: Any = None
    task: Any = None
    try:
        while not stop.is_set():
            for e in c.events(after, name, wait_s=0.5):
                after = e["seq"]
                if e["type"] != "progress":
                    continue
                done, total = (int(x) for x in e["detail"].split())
                if bar is None:
                    from rich.progress import (
                        BarColumn,
                        DownloadColumn,
                        Progress,
                        TransferSpeedColumn,
                    )

                    bar = Progress("Retrieving install media", BarColumn(), DownloadColumn(),
                                   TransferSpeedColumn(), transient=False)  # fmt: skip
                    bar.start()
                    task = bar.add_task("media", total=total or None)
                bar.update(task, completed=done, total=total or None)
    except (VirtkitError, OSError):
        pass
    finally:
        if bar is not None:
            bar.stop()


def _follow_console(client: Any, name: str, install_boot: bool) -> int:
    """Attach the console; after the installer reboots, re-attach to the installed system."""
    from virtkit.client import console

    ws = console.connect(client.socket_path, name, False)
    info = client.info(name)
    if info["state"] == "paused":
        client.action(name, "resume")
    how = console.session(ws, name)
    while install_boot and how == "closed":  # the installer rebooted: follow the new boot
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if client.info(name)["state"] == "running":
                    break
            except VirtkitError:
                return 0
            time.sleep(0.2)
        else:
            return 0
        install_boot = False
        try:
            ws = console.connect(client.socket_path, name, False)
        except VirtkitError:
            return 0
        how = console.session(ws, name)
    return 1 if how == "taken" else 0


def _wait_install(client: Any, name: str, minutes: float) -> int:
    deadline = None if minutes < 0 else time.monotonic() + minutes * 60
    after = _last_seq(client)
    print(f"Waiting {'' if deadline is None else f'{minutes:g} minutes '}for the installation "
          "to complete.")  # fmt: skip
    while deadline is None or time.monotonic() < deadline:
        for e in client.events(after, name, wait_s=5):
            after = e["seq"]
            if e["type"] == "install-finished":
                print("Domain creation completed.")
                return 0
    print("Domain has not finished installing within the --wait time; it keeps running.")
    return 1
