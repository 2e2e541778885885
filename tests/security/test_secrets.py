"""Secrets (VNC and cloud-init passwords) never appear in dumps, events, API output or logs."""

from __future__ import annotations

import io
import logging
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.api.conftest import Api, Scenario
from tests.conftest import Daemon
from virtkit.formats.domfile import domain_from_mapping
from virtkit.formats.libvirt_xml import domain_to_xml
from virtkit.formats.redact import SecretFilter, redact_text

Run = Callable[[Scenario], None]
SECRET = "Zq7!pw8x"


def test_vnc_password_stays_inside(api: Run) -> None:
    async def scenario(c: Api) -> None:
        await c.define({"config": {"name": "v", "memory_mib": 64,
                                   "graphics": {"type": "vnc", "password": SECRET}}})  # fmt: skip
        outputs = [
            (await c.call("GET", "/v1/domains/v/config")).text,
            (await c.call("GET", "/v1/domains/v")).text,
            (await c.call("GET", "/v1/domains", params={"all": "true"})).text,
            (await c.call("GET", "/v1/events", params={"after": 0})).text,
        ]
        cfg = await c.get("/v1/domains/v/config")
        assert cfg["graphics"] == {"type": "vnc"}
        outputs.append(domain_to_xml(domain_from_mapping(cfg, "dump")))  # dumpxml
        # the stored definition keeps it: the daemon needs it to set the VNC password
        assert c.svc.entry("v").domain.graphics.password == SECRET
        # a bad password is refused without echoing it
        bad = SECRET * 2
        resp = await c.call("POST", "/v1/domains", json_body={"config": {
            "name": "w", "graphics": {"type": "vnc", "password": bad}}})  # fmt: skip
        assert resp.status_code == 400
        outputs.append(resp.text)
        for out in outputs:
            assert SECRET not in out, out

    api(scenario)


def test_log_lines_are_masked() -> None:
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.addFilter(SecretFilter())
    log = logging.getLogger("test.secrets")
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    try:
        log.debug("--> %s", {"execute": "set_password",
                             "arguments": {"protocol": "vnc", "password": SECRET}})  # fmt: skip
        log.debug('{"execute": "change-vnc-password", "arguments": {"password": "%s"}}', SECRET)
        log.info("user-data chpasswd root_password=%s", SECRET)
    finally:
        log.removeHandler(handler)
    text = buf.getvalue()
    assert SECRET not in text and text.count("***") == 3, text
    assert redact_text("-vnc :0,password=on") == "-vnc :0,password=on"


@pytest.mark.qemu
def test_cloud_init_root_password_is_shown_once_and_kept_out(
    daemon: Daemon, tmp_path: Path
) -> None:
    """A generated root password is printed once by install and written into the seed
    ISO (0600, for the guest); logs, events, dumps, dominfo and listings never hold it."""
    from virtkit.guests.bootdisk import ensure_boot_disk
    from virtkit.storage.isoread import IsoImage

    disk = tmp_path / "pw.img"
    disk.write_bytes(ensure_boot_disk().read_bytes())
    r = daemon.cli("install", "--name", "pw", "--memory", "256", "--import",
                   "--disk", f"path={disk},format=raw", "--network", "none",
                   "--cloud-init", "root-password-generate=on", "--noautoconsole")  # fmt: skip
    [line] = [ln for ln in r.stdout.splitlines() if "Password for first root login" in ln] or [
        r.stdout + r.stderr
    ]
    password = line.rsplit(" ", 1)[1]
    assert len(password) >= 12 and (r.stdout + r.stderr).count(password) == 1

    seed = daemon.state_dir / "images" / "pw-cidata.iso"
    st = seed.stat()  # no one else: (group bits = the ACL mask of the QEMU user's entry)
    assert stat.S_IMODE(st.st_mode) & 0o007 == 0 and st.st_uid == 0 and st.st_gid == 0
    with IsoImage(seed) as iso:
        assert f"root:{password}" in (iso.read_bytes("user-data") or b"").decode()

    outputs = [daemon.cli(*argv).stdout for argv in (
        ("dumpconfig", "pw"), ("dumpxml", "pw"), ("dominfo", "pw"), ("list", "--all"),
        ("event", "--all"), ("domblklist", "pw"),
    )]  # fmt: skip
    daemon.cli("destroy", "pw")
    outputs.append((daemon.base / "daemon.stderr").read_text(errors="replace"))
    outputs += [p.read_text(errors="replace") for p in (daemon.state_dir / "log").iterdir()]
    for out in outputs:
        assert password not in out, out[-2000:]
