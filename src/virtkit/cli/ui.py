"""`ui`, `viewer`, `vncdisplay`: the web manager and graphical consoles.

`virtkit ui` prints a one-time login link to the daemon's browser listener
(the link sets a session cookie; it works once, for two minutes). `viewer`
does virt-viewer's job: a link to the page with noVNC connected to the guest.
`vncdisplay` answers like virsh (``127.0.0.1:0``, or the socket path).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from virtkit.cli.main import DOMAIN, a, args, client, command, say, warn


def open_browser(url: str) -> bool:
    """xdg-open the URL if there is a desktop to open it on; True if it was handed over."""
    import shutil
    import subprocess

    opener = shutil.which("xdg-open")
    if opener is None or not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    try:
        subprocess.Popen([opener, url], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    except OSError:
        return False
    return True


def _link(c: Any, next_path: str) -> str:
    return str(c.login_link(next_path)["url"])


@args(a("--open", action="store_true", help="open it in a browser (xdg-open)"),
      a("--no-login", action="store_true",
        help="print the plain address (log in with the password in web-password)"))  # fmt: skip
@command("ui", "print (or --open) the web manager's address, with a one-time login link")
def cmd_ui(ns: argparse.Namespace) -> int:
    c = client(ns)
    info = c.ui_info()
    if not info["listening"]:
        warn(f"error: the web UI is not available: {info['message']}")
        return 4
    url = str(info["url"]) if ns.no_login else _link(c, "/ui/")
    say(url)
    if ns.no_login:
        warn(f"(log in with the password in {info['password_file']})")
    else:
        warn("(the link logs in once, within 2 minutes; the password is in "
             f"{info['password_file']})")  # fmt: skip
    if ns.open and not open_browser(url):
        warn("could not open a browser here (no xdg-open or no display): open the link yourself")
    return 0


@args(DOMAIN)
@command("vncdisplay", "show where a domain's VNC display listens")
def cmd_vncdisplay(ns: argparse.Namespace) -> int:
    say(client(ns).vncdisplay(ns.domain)["display"])
    return 0


@args(DOMAIN, a("--print", action="store_true", dest="print_only",
                help="only print the link, do not try to open a browser"))  # fmt: skip
@command("viewer", "open a domain's graphical console in the browser (noVNC)")
def cmd_viewer(ns: argparse.Namespace) -> int:
    from urllib.parse import quote

    c = client(ns)
    c.vncdisplay(ns.domain)  # running, with VNC graphics, or a clear error now
    url = _link(c, f"/ui/#/domain/{quote(ns.domain, safe='')}/display")
    say(url)
    if not ns.print_only and not open_browser(url):
        sys.stderr.write("open this link in a browser on this host (it works once, for 2 min)\n")
    return 0
