"""Golden tests: virt-install command lines -> InstallSpec (JSON) and libvirt XML.

Each ``<case>.args`` holds one command line as a shell would take it (quotes,
backslash-newline continuations; lines starting with ``#`` are comments, and
``# unprivileged`` parses it in session mode). ``<case>.json`` is the
InstallSpec (``model_dump(mode="json")``), ``<case>.xml`` the domain's XML.

    VIRTKIT_REGEN_GOLDEN=1 pytest tests/golden/virtinstall     # rewrite them
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import pytest

from virtkit.formats.libvirt_xml import domain_from_xml, domain_to_xml
from virtkit.formats.virtinstall import ParsedInstall, parse_install_args
from virtkit.model.domain import Domain

HERE = Path(__file__).parent
CASES = sorted(p.stem for p in HERE.glob("*.args"))
REGEN = os.environ.get("VIRTKIT_REGEN_GOLDEN") == "1"


def load(case: str) -> ParsedInstall:
    text = (HERE / f"{case}.args").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    unprivileged = "# unprivileged" in text.splitlines()
    argv = shlex.split("\n".join(lines).replace("\\\n", " "))
    return parse_install_args(argv, unprivileged=unprivileged)


def check(path: Path, got: str) -> None:
    if REGEN:
        path.write_text(got)
        return
    assert path.exists(), f"missing {path.name}; run VIRTKIT_REGEN_GOLDEN=1"
    assert got == path.read_text(), (
        f"{path.name} changed; if intended, run VIRTKIT_REGEN_GOLDEN=1 pytest tests/golden"
    )


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 15


@pytest.mark.parametrize("case", CASES)
def test_spec_json(case: str) -> None:
    spec = load(case).spec
    check(HERE / f"{case}.json", json.dumps(spec.model_dump(mode="json"), indent=2) + "\n")


@pytest.mark.parametrize("case", CASES)
def test_domain_xml(case: str) -> None:
    check(HERE / f"{case}.xml", domain_to_xml(load(case).spec.domain))


def _comparable(dom: Domain) -> Domain:
    graphics = dom.graphics.model_copy(update={"password": None})
    return dom.model_copy(update={"graphics": graphics})


@pytest.mark.parametrize("case", CASES)
def test_xml_reads_back(case: str) -> None:
    dom = load(case).spec.domain
    back = domain_from_xml(domain_to_xml(dom))
    # The XML carries the targets virtkit will assign; everything else is identical.
    untargeted = back.model_copy(
        update={
            "disks": [
                d.model_copy(update={"target": o.target})
                for d, o in zip(back.disks, dom.disks, strict=True)
            ]
        }
    )
    assert untargeted == _comparable(dom)


def test_no_orphan_outputs() -> None:
    outputs = {p.stem for p in HERE.glob("*.json")} | {p.stem for p in HERE.glob("*.xml")}
    assert outputs <= set(CASES)


# -- pinned properties (a regenerated file cannot silently lose them) ----------------------


def test_guide_command() -> None:
    parsed = load("guide-rhel7")
    spec, dom = parsed.spec, parsed.spec.domain
    assert (dom.memory_mib, dom.current_memory_mib) == (1024, 512)
    assert (dom.vcpus, dom.max_vcpus) == (1, 2)
    assert dom.os_variant == "rhel7.0"
    assert spec.method.value == "location"
    assert spec.extra_args == "console=tty0 console=ttyS0"
    assert spec.new_disks[0].size_bytes == 12 * 1024**3
    assert dom.disks[0].format is not None and dom.disks[0].format.value == "qcow2"
    assert dom.boot.order == ["hd"] and dom.boot.kernel is None
    assert dom.nics[0].source == "br0"
    assert parsed.warnings == ["--os-type is deprecated and ignored (use --os-variant)"]


def test_windows_defaults() -> None:
    dom = load("windows11").spec.domain
    assert dom.boot.uefi and dom.memory_mib == 4096
    assert dom.disks[0].bus is not None and dom.disks[0].bus.value == "sata"
    assert dom.nics[0].model.value == "e1000e"
    assert dom.boot.order == ["hd", "cdrom"]


def test_quoted_comma_path() -> None:
    assert load("quoted-path").spec.domain.disks[0].path == "/srv/images/a,b.qcow2"
