"""virtkit: the command line. virsh's verbs, as users type them.

Thin: parse, call the client, render. Imports stay lazy so a call like
``virtkit list --all`` pays only for the stdlib HTTP client.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

from virtkit.errors import ConfigError, VirtkitError, exit_code

Handler = Callable[[argparse.Namespace], int]
COMMANDS: dict[str, tuple[str, Handler]] = {}


def command(name: str, help_: str, *aliases: str) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        for n in (name, *aliases):
            COMMANDS[n] = (help_, fn)
        return fn

    return deco


def args(*specs: tuple[tuple[str, ...], dict[str, Any]]) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        def setup(p: argparse.ArgumentParser) -> None:
            for flags, kw in specs:
                p.add_argument(*flags, **kw)

        fn._setup = setup  # type: ignore[attr-defined]
        return fn

    return deco


def a(*flags: str, **kw: Any) -> tuple[tuple[str, ...], dict[str, Any]]:
    return flags, kw


DOMAIN = a("domain", help="domain name")


def client(ns: argparse.Namespace) -> Any:
    from virtkit.client.client import Client

    return Client(ns.connect)


def say(msg: str) -> None:
    sys.stdout.write(msg + "\n")


def warn(msg: str) -> None:
    sys.stderr.write(msg + "\n")


# -- domain lifecycle ---------------------------------------------------------------------------


@args(a("file", help="domain file (YAML or JSON; '-' for stdin)"))
@command("define", "define a domain from a file")
def cmd_define(ns: argparse.Namespace) -> int:
    if ns.file == "-":
        text, source = sys.stdin.read(), "<stdin>"
    else:
        try:
            with open(ns.file, encoding="utf-8") as f:
                text = f.read(1 << 20 + 1)
        except OSError as exc:
            raise ConfigError(f"cannot read {ns.file}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{ns.file} is not a text file (YAML or JSON expected)") from None
        source = ns.file
    d = client(ns).define_text(text, os.path.basename(source))  # YAML, JSON or libvirt XML
    say(f"Domain '{d['name']}' defined from {ns.file}")
    return 0


@args(DOMAIN, a("--console", action="store_true", help="attach to the serial console"),
      a("--paused", action="store_true", help="leave the guest paused after start"),
      a("--force-boot", action="store_true", help="boot afresh, drop a managed save"))  # fmt: skip
@command("start", "start a (defined) domain")
def cmd_start(ns: argparse.Namespace) -> int:
    c = client(ns)
    # With --console, start paused and attach first so no boot output is missed.
    d = c.action(ns.domain, "start", paused=(ns.paused or ns.console) or None,
                 force_boot=ns.force_boot or None)  # fmt: skip
    if d.get("warning"):
        warn(d["warning"])
    say(f"Domain '{ns.domain}' started")
    if ns.console:
        from virtkit.client import console

        ws = console.connect(c.socket_path, ns.domain, False)
        if not ns.paused:
            c.action(ns.domain, "resume")
        return console.run(ws, ns.domain)
    return 0


@args(DOMAIN, a("--wait", nargs="?", const=300.0, type=float, default=0.0, metavar="SECONDS",
                help="wait until the domain is off (default up to 300 s)"),
      a("--mode", default="acpi", choices=["acpi"], help="shutdown method"))  # fmt: skip
@command("shutdown", "gracefully shut down a domain (ACPI power button)")
def cmd_shutdown(ns: argparse.Namespace) -> int:
    client(ns).action(ns.domain, "shutdown", wait_s=ns.wait or None)
    say(f"Domain '{ns.domain}' {'is shut off' if ns.wait else 'is being shutdown'}")
    return 0


@args(DOMAIN)
@command("reboot", "reboot a domain (the guest is asked, like the power button)")
def cmd_reboot(ns: argparse.Namespace) -> int:
    client(ns).action(ns.domain, "reboot")
    say(f"Domain '{ns.domain}' is being rebooted")
    return 0


@args(DOMAIN)
@command("reset", "reset a domain as if its reset button were pressed")
def cmd_reset(ns: argparse.Namespace) -> int:
    client(ns).action(ns.domain, "reset")
    say(f"Domain '{ns.domain}' was reset")
    return 0


@args(DOMAIN, a("--graceful", action="store_true",
                help="only SIGTERM; fail instead of killing if QEMU does not exit"))  # fmt: skip
@command("destroy", "stop a domain at once (hard power off)")
def cmd_destroy(ns: argparse.Namespace) -> int:
    client(ns).action(ns.domain, "destroy", graceful=ns.graceful or None)
    say(f"Domain '{ns.domain}' destroyed")
    return 0


@args(DOMAIN)
@command("suspend", "pause a running domain")
def cmd_suspend(ns: argparse.Namespace) -> int:
    client(ns).action(ns.domain, "suspend")
    say(f"Domain '{ns.domain}' suspended")
    return 0


@args(DOMAIN)
@command("resume", "resume a paused domain")
def cmd_resume(ns: argparse.Namespace) -> int:
    client(ns).action(ns.domain, "resume")
    say(f"Domain '{ns.domain}' resumed")
    return 0


@args(DOMAIN, a("--disable", action="store_true", help="do not start it with the daemon"))
@command("autostart", "start a domain when the daemon starts")
def cmd_autostart(ns: argparse.Namespace) -> int:
    client(ns).set_autostart(ns.domain, not ns.disable)
    say(f"Domain '{ns.domain}' {'unmarked' if ns.disable else 'marked'} as autostarted")
    return 0


# -- views --------------------------------------------------------------------------------------


@args(a("--all", action="store_true", help="include inactive domains"),
      a("--inactive", action="store_true", help="only inactive domains"),
      a("--name", action="store_true", help="print only names"),
      a("--uuid", action="store_true", help="print only UUIDs"))  # fmt: skip
@command("list", "list domains")
def cmd_list(ns: argparse.Namespace) -> int:
    from virtkit.cli.render import domain_table

    rows = client(ns).list_domains(ns.all or ns.inactive)
    if ns.inactive:
        rows = [r for r in rows if r["id"] is None]
    if ns.name or ns.uuid:
        for r in rows:
            say(r["name"] if ns.name else r["uuid"])
        return 0
    sys.stdout.write(domain_table(rows))
    return 0


@args(DOMAIN)
@command("dominfo", "show domain information")
def cmd_dominfo(ns: argparse.Namespace) -> int:
    from virtkit.cli.render import dominfo

    sys.stdout.write(dominfo(client(ns).info(ns.domain)))
    return 0


@args(DOMAIN, a("--reason", action="store_true", help="also say why"))
@command("domstate", "show a domain's state")
def cmd_domstate(ns: argparse.Namespace) -> int:
    d = client(ns).info(ns.domain)
    say(f"{d['state']} ({d['reason']})" if ns.reason else d["state"])
    return 0


@args(DOMAIN, a("--json", action="store_true"))
@command("dumpconfig", "print a domain's definition in virtkit's format")
def cmd_dumpconfig(ns: argparse.Namespace) -> int:
    import json

    cfg = client(ns).config(ns.domain)
    if ns.json:
        say(json.dumps(cfg, indent=2))
    else:
        import yaml

        sys.stdout.write(yaml.safe_dump(cfg, sort_keys=False))
    return 0


@args(DOMAIN, a("--security-info", action="store_true", help="accepted; secrets are never shown"))
@command("dumpxml", "print a domain's definition as libvirt domain XML")
def cmd_dumpxml(ns: argparse.Namespace) -> int:
    from virtkit.formats.libvirt_xml import domain_to_xml
    from virtkit.model.domain import Domain

    sys.stdout.write(domain_to_xml(Domain.model_validate(client(ns).config(ns.domain))))
    return 0


@command("install", "create a domain and install it (virt-install's options)")
def cmd_install(ns: argparse.Namespace) -> int:  # main() hands `install` over before argparse
    return _install(["install"])


@args(a("--domain", help="only this domain"), a("--loop", action="store_true",
      help="keep waiting for new events"), a("--timestamp", action="store_true"),
      a("--after", type=int, default=None, help="events after this sequence number"),
      a("--all", action="store_true", help="print the stored history"))  # fmt: skip
@command("event", "show domain events")
def cmd_event(ns: argparse.Namespace) -> int:
    c = client(ns)
    if ns.loop:  # the server-sent event stream; reconnects from the last number seen
        from virtkit.client.events import follow

        c.version()  # starts the session daemon if needed
        since = 0 if ns.all and ns.after is None else ns.after  # None: from now on
        for e in follow(c.socket_path, since, ns.domain):
            _say_event(e, ns.timestamp)
        return 0
    after = ns.after or 0
    while True:  # the stored history, a page at a time
        evs = c.events(after, ns.domain)
        for e in evs:
            _say_event(e, ns.timestamp)
            after = e["seq"]
        if len(evs) < 1000:
            return 0


def _say_event(e: dict[str, Any], timestamp: bool) -> None:
    import time

    stamp = time.strftime("%Y-%m-%d %H:%M:%S ", time.localtime(e["ts"])) if timestamp else ""
    say(f"{stamp}event #{e['seq']} '{e['type']}' for domain '{e['domain']}': {e['detail']}")
    sys.stdout.flush()


# -- console ------------------------------------------------------------------------------------


def _console(c: Any, name: str, force: bool) -> int:
    from virtkit.client import console

    ws = console.connect(c.socket_path, name, force)
    return int(console.run(ws, name))


@args(DOMAIN, a("--force", action="store_true", help="take the console over from another client"))
@command("console", "connect to a domain's serial console (Ctrl+] leaves)")
def cmd_console(ns: argparse.Namespace) -> int:
    return _console(client(ns), ns.domain, ns.force)


# -- host and daemon ----------------------------------------------------------------------------


@args(a("--reprobe", action="store_true", help="boot the KVM probe guest again (ignore the cache)"),
      a("--no-probe", action="store_true", help="skip the KVM boot probe"))  # fmt: skip
@command("host-validate", "check the host for virtualization support (and prove KVM boots)")
def cmd_host_validate(ns: argparse.Namespace) -> int:
    from virtkit.cli.hostcheck import host_validate

    return host_validate(reprobe=ns.reprobe, probe=not ns.no_probe)


@command("version", "show client and daemon versions")
def cmd_version(ns: argparse.Namespace) -> int:
    import virtkit

    say(f"Compiled against library: virtkit {virtkit.__version__}")
    v = client(ns).version()
    say(
        f"Running against daemon: virtkit {v['version']} ({v['mode']} mode, state {v['state_dir']})"
    )
    return 0


@args(a("--mode", choices=["system", "session"], default=None),
      a("--log-stderr", action="store_true"))  # fmt: skip
@command("daemon", "run the virtkit daemon in the foreground (same as virtkitd)")
def cmd_daemon(ns: argparse.Namespace) -> int:
    from virtkit.daemon.main import main as daemon_main

    argv = (["--mode", ns.mode] if ns.mode else []) + (["--log-stderr"] if ns.log_stderr else [])
    return daemon_main(argv)


from virtkit.cli import domextra as _domextra  # noqa: E402, F401  (registers its verbs)
from virtkit.cli import hostfeat as _hostfeat  # noqa: E402, F401  (nodeinfo, nodedev-*, pins)
from virtkit.cli import hotplug as _hotplug  # noqa: E402, F401  (registers its verbs)
from virtkit.cli import migrate as _migrate  # noqa: E402, F401  (migrate, domjob*)
from virtkit.cli import network as _network  # noqa: E402, F401  (net-*, domif*, port-forward)
from virtkit.cli import security as _security  # noqa: E402, F401  (pki, qemu-monitor-command)
from virtkit.cli import snapshots as _snapshots  # noqa: E402, F401  (registers its verbs)
from virtkit.cli import stats as _stats  # noqa: E402, F401  (domstats, top)
from virtkit.cli import storage as _storage  # noqa: E402, F401  (registers its verbs)
from virtkit.cli import ui as _ui  # noqa: E402, F401  (ui, viewer, vncdisplay)


def _command_word(argv: list[str]) -> str | None:
    """The verb in argv (skipping -c/--connect URI), to build only its parser."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("-c", "--connect"):
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="virtkit",
        description="virtkit: KVM virtual machines with virsh's words",
    )
    p.add_argument("-c", "--connect", default=None, metavar="URI",
                   help="virtkit:///system, virtkit:///session, unix:///path/to/sock")  # fmt: skip
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    seen: set[int] = set()
    for name, (help_, fn) in COMMANDS.items():
        if only is not None and name != only:
            continue  # argparse costs ~1 ms per verb: build just the one asked for
        sp = sub.add_parser(name, help=None if id(fn) in seen else help_, description=help_)
        seen.add(id(fn))
        getattr(fn, "_setup", lambda _: None)(sp)
        sp.set_defaults(func=fn)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    word = _command_word(argv)
    if word == "install":  # virt-install's own grammar: hand over everything after the verb
        return _run_guarded(lambda: _install(argv))
    parser = build_parser(word if word in COMMANDS else None)
    ns = parser.parse_args(argv)
    if not getattr(ns, "func", None):
        parser.print_help()
        return 2
    return _run_guarded(lambda: int(ns.func(ns)))


def _install(argv: list[str]) -> int:
    from virtkit.cli.install import run_install

    i = argv.index("install")
    uri = None
    head = argv[:i]
    for j, a in enumerate(head):
        if a in ("-c", "--connect") and j + 1 < len(head):
            uri = head[j + 1]
        elif a.startswith("--connect="):
            uri = a.split("=", 1)[1]
    rest = argv[i + 1 :]
    for j, a in enumerate(rest):  # virt-install takes --connect too
        if a == "--connect" and j + 1 < len(rest):
            uri = rest[j + 1]
            rest = rest[:j] + rest[j + 2 :]
            break
    return run_install(rest, uri)


def _run_guarded(fn: Callable[[], int]) -> int:
    try:
        return fn()
    except VirtkitError as exc:
        warn(f"error: {exc.message}")
        return exit_code(exc)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # never a traceback for users; VIRTKIT_DEBUG=1 shows it
        if os.environ.get("VIRTKIT_DEBUG"):
            raise
        warn(f"error: internal error: {exc!r} (run with VIRTKIT_DEBUG=1 for details)")
        return 1


if __name__ == "__main__":
    sys.exit(main())
