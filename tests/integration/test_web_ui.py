"""The web manager in headless Chromium (Debian's chromium, driven by Playwright).

From the page: create the tiny guest (kernel + initrd, VNC graphics) with the create
form, see it running, type into its serial console (xterm.js) and read the answer,
see its VGA framebuffer in noVNC (the canvas is not blank; a screenshot is kept),
watch the list's live state and sparklines, force it off. Screenshots go to the
test's tmp dir, or to $VIRTKIT_TEST_SHOTS when set.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Daemon

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
