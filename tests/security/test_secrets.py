"""Secrets (VNC and cloud-init passwords) never appear in dumps, events, API output or logs."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable

from tests.api.conftest import Api, Scenario
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
