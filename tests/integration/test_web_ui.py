"""The web manager in headless Chromium (Debian's chromium, driven by Playwright).

From the page: create the tiny guest (kernel + initrd, VNC graphics) with the create
form, see it running, type into its serial console (xterm.js) and read the answer,
see its VGA framebuffer in noVNC (the canvas is not blank; a screenshot is kept),
watch the list's live state and sparklines, force it off. Screenshots go to the
test's tmp dir, or to $VIRTKIT_TEST_SHOTS when set. And the password form, as from
another machine: a wrong password, the right one, and the form posted from elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Daemon
from virtkit.daemon.auth.webauth import PASSWORD_FILE

pytestmark = pytest.mark.qemu

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
CANVAS_DRAWN = """() => {
  const c = document.querySelector('#display canvas');
  if (!c || c.width < 100 || c.height < 100) return false;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let lit = 0;
  for (let i = 0; i < d.length; i += 16) if (d[i] + d[i + 1] + d[i + 2] > 200) lit++;
  return lit > 500;
}"""


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (scripts/setup installs it)")
    with sync_api.sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, args=CHROMIUM_ARGS,
            headless=True, viewport={"width": 1280, "height": 860},
        )  # fmt: skip
        try:
            yield ctx
        finally:
            ctx.close()


def shots_dir(tmp_path: Path) -> Path:
    d = Path(os.environ.get("VIRTKIT_TEST_SHOTS") or tmp_path / "shots")
    d.mkdir(parents=True, exist_ok=True)
    return d


def test_web_manager_creates_a_vm_and_drives_its_consoles(
    daemon: Daemon, tiny: object, browser: Any, tmp_path: Path
) -> None:
    shots = shots_dir(tmp_path)
    url = daemon.cli("ui").stdout.strip()
    assert "/ui/login?token=" in url and url.startswith("http://127.0.0.1:")
    base = url.split("/ui/", 1)[0]
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    # Without a session: the login page, not the app.
    page.goto(f"{base}/ui/")
    assert "/ui/login" in page.url and page.locator("input[name=password]").count() == 1

    # The one-time link logs in and lands on the machine list.
    page.goto(url)
    page.wait_for_selector("text=No machines yet")
    assert page.url == f"{base}/ui/"

    # An install from an ISO, as a dry run: the daemon checks it all and creates nothing.
    from virtkit.guests.media import ensure_iso

    page.click("a[data-nav=new]")
    page.fill("input[name=name]", "isovm")
    page.select_option("select[name=source]", "cdrom")
    page.fill("input[name=media]", str(ensure_iso()))
    page.fill("input[name=disk_path]", str(tmp_path / "isovm.qcow2"))
    page.fill("input[name=disk_size]", "1")
    page.click("text=Check (dry run)")
    page.wait_for_selector("text=Everything checks out", timeout=30_000)
    assert not (tmp_path / "isovm.qcow2").exists()
    assert "isovm" not in daemon.cli("list", "--all").stdout
    page.click("a[data-nav=list]")

    # Create the tiny guest from the form (virt-install's options, run by the daemon).
    page.click("a[data-nav=new]")
    page.fill("input[name=name]", "webvm")
    page.fill("input[name=memory]", "256")
    page.select_option("select[name=source]", "kernel")
    page.fill("input[name=kernel]", str(tiny.kernel))  # type: ignore[attr-defined]
    page.fill("input[name=initrd]", str(tiny.initrd))  # type: ignore[attr-defined]
    page.fill("input[name=cmdline]", "console=tty0 console=ttyS0")
    page.select_option("select[name=graphics]", "vnc")
    page.select_option("select[name=virt_type]", "qemu")
    assert "--boot 'kernel=" in (page.text_content("pre.argv") or "")
    page.screenshot(path=str(shots / "new-vm-form.png"), full_page=True)
    page.click("button[type=submit]")
    page.wait_for_url("**/ui/#/domain/webvm", timeout=60_000)
    page.wait_for_selector(".card-head .state.s-running", timeout=60_000)
    assert "running" in daemon.cli("domstate", "webvm").stdout

    # Serial console: xterm.js over the console websocket; type a command, read the answer.
    page.click("a[data-tab=console]")
    page.wait_for_selector("#serial[data-console=connected]", timeout=30_000)
    daemon.wait_console("webvm", "tiny# ")
    page.click("#serial")
    page.keyboard.type("echo web-$((6*7))\n")
    page.wait_for_function(
        "() => document.querySelector('#serial .xterm-rows').textContent.includes('web-42')",
        timeout=30_000,
    )
    page.screenshot(path=str(shots / "serial-console.png"))

    # Graphical console: noVNC through the daemon's token-checked websocket -> VNC proxy.
    page.click("a[data-tab=display]")
    page.wait_for_selector("#display[data-display=connected]", timeout=30_000)
    page.wait_for_function(CANVAS_DRAWN, timeout=30_000)
    page.locator("#display").screenshot(path=str(shots / "vnc-display.png"))
    page.screenshot(path=str(shots / "display-page.png"))
    assert (shots / "vnc-display.png").stat().st_size > 5000

    # The list: live state, sparklines filling in, and a button that acts.
    page.click("a[data-nav=list]")
    row = "tr[data-domain=webvm]"
    page.wait_for_selector(f"{row}[data-state=running]")
    page.wait_for_function(  # both sparklines, a few samples (2 s apart) in
        """() => [...document.querySelectorAll('tr[data-domain=webvm] polyline')]
                   .filter((p) => p.getAttribute('points').split(' ').length >= 3).length === 2""",
        timeout=20_000,
    )
    page.screenshot(path=str(shots / "machine-list.png"))
    page.click(f"{row} button[data-action=destroy]")
    page.wait_for_selector(f"{row}[data-state='shut off']", timeout=30_000)
    assert "shut off" in daemon.cli("domstate", "webvm").stdout
    assert errors == [], errors
    if os.environ.get("VIRTKIT_TEST_SHOTS") is None:
        shutil.rmtree(shots, ignore_errors=True)


def host_address() -> str:
    """An address of this host other machines would use (127.0.0.1 if it has none)."""
    out = subprocess.run(["ip", "-j", "-4", "addr", "show", "scope", "global"],
                         capture_output=True, text=True, check=False).stdout  # fmt: skip
    for link in json.loads(out or "[]"):
        for addr in link.get("addr_info", []):
            if addr.get("local"):
                return str(addr["local"])
    return "127.0.0.1"


@pytest.fixture
def lan_daemon() -> Iterator[Daemon]:
    """A daemon whose browser listener is on the host's network address, as for a LAN."""
    base = Path(tempfile.mkdtemp(prefix="vk", dir="/tmp"))
    d = Daemon(base)
    d.env["VIRTKIT_UI_LISTEN"] = f"{host_address()}:0"
    d.start()
    try:
        yield d
    finally:
        d.cleanup()
        subprocess.run(["rm", "-rf", str(base)], check=False)


FOREIGN_FORM = """<!doctype html><form id="f" method="post" action="{action}">
<input name="password" value="{password}"><input name="next" value="/ui/"></form>
<script>document.getElementById('f').submit()</script>"""


def test_password_form_logs_in_from_another_machine(lan_daemon: Daemon, browser: Any) -> None:
    """What a person at another machine does: open /ui/login, type the password, submit."""
    ui = lan_daemon.cli("ui", "--no-login")  # the address, and where the password is
    url = ui.stdout.strip()
    base = url.split("/ui/", 1)[0]
    assert url == f"{base}/ui/" and base.startswith(f"http://{host_address()}:"), url
    password_file = lan_daemon.state_dir / PASSWORD_FILE
    assert str(password_file) in ui.stderr
    password = password_file.read_text().strip()
    page = browser.new_page()

    # A wrong password: the login page again, saying so (not a JSON error).
    page.goto(f"{base}/ui/")
    assert "/ui/login" in page.url
    page.fill("input[name=password]", "not-the-password")
    page.click("button[type=submit]")
    page.wait_for_selector("p.error")
    assert "Wrong password" in (page.text_content("p.error") or "")
    assert page.locator("input[name=password]").count() == 1

    # The right one: the manager.
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_selector("text=No machines yet")
    assert page.url == f"{base}/ui/"
    page.click("#logout")
    page.wait_for_url("**/ui/login")

    # The same form posted from another site, or from an opaque (null) origin: refused,
    # even with the right password, and no session is made.
    foreign = browser.new_page()
    form = FOREIGN_FORM.format(action=f"{base}/ui/login", password=password)
    foreign.route("http://evil.example/**", lambda route: route.fulfill(
        status=200, content_type="text/html", body=form))  # fmt: skip
    with foreign.expect_navigation(url=f"{base}/ui/login"):
        foreign.goto("http://evil.example/")  # a real cross-origin POST
    assert "refused" in (foreign.text_content("p.error") or "")
    foreign.goto("about:blank")  # an opaque origin: the browser sends Origin: null
    with foreign.expect_navigation(url=f"{base}/ui/login"):
        foreign.evaluate(
            "([html]) => { document.body.innerHTML = html; document.forms[0].submit(); }", [form]
        )
    assert "refused" in (foreign.text_content("p.error") or "")
    page.goto(f"{base}/ui/")
    assert "/ui/login" in page.url
