"""Our YAML/JSON domain file format: parsing, error text, size limit, round trips."""

from __future__ import annotations

import json

import pytest
import yaml

from virtkit.errors import ConfigError
from virtkit.formats.domfile import (
    MAX_FILE_BYTES,
    domain_from_mapping,
    domain_from_text,
    domain_to_mapping,
    domain_to_yaml,
    parse_mapping,
)
from virtkit.model.domain import DiskBus, DiskFormat, NicModel

YAML = """\
name: web
memory_mib: 1024
vcpus: 2
boot:
  kernel: /boot/vmlinuz
  cmdline: console=ttyS0
disks:
  - path: /var/lib/virtkit/images/web.qcow2
  - path: /iso/install.iso
    device: cdrom
nics:
  - model: e1000
    mac: 52:54:00:12:34:56
"""


def config_error(text: str, source: str = "web.yaml") -> str:
    with pytest.raises(ConfigError) as exc:
        domain_from_text(text, source)
    return exc.value.message


def test_yaml() -> None:
    d = domain_from_text(YAML, "web.yaml")
    assert d.name == "web"
    assert d.memory_mib == 1024
    assert d.vcpus == 2
    assert d.boot.kernel == "/boot/vmlinuz"
    assert d.disks[0].format is DiskFormat.QCOW2
    assert d.disks[1].bus is DiskBus.SATA
    assert d.nics[0].model is NicModel.E1000
    assert d.nics[0].mac == "52:54:00:12:34:56"


def test_json_gives_the_same_domain() -> None:
    from_yaml = domain_from_text(YAML)
    as_json = json.dumps(domain_to_mapping(from_yaml))
    assert domain_from_text(as_json) == from_yaml
    assert domain_from_text("  \n" + as_json) == from_yaml


def test_round_trip_through_yaml() -> None:
    d = domain_from_text(YAML)
    assert domain_from_text(domain_to_yaml(d)) == d


def test_mapping_leaves_defaults_out() -> None:
    m = domain_to_mapping(domain_from_text("name: tiny\n"))
    assert m == {"name": "tiny"}


def test_unknown_field_names_the_field_and_the_fix() -> None:
    msg = config_error("name: web\nmemroy_mib: 512\n")
    assert msg.startswith("web.yaml: invalid domain definition:")
    assert "memroy_mib: unknown field (remove it, or check its spelling)" in msg


def test_nested_field_path() -> None:
    msg = config_error("name: web\ndisks:\n  - path: /a.img\n  - path: relative.img\n")
    assert "disks.1.path: disk path must be an absolute path (got 'relative.img')" in msg


def test_nested_unknown_field_path() -> None:
    msg = config_error("name: web\nnics:\n  - modle: e1000\n")
    assert "nics.0.modle: unknown field" in msg


def test_missing_name() -> None:
    assert "name: required field is missing" in config_error("memory_mib: 512\n")


def test_several_problems_are_all_reported() -> None:
    msg = config_error("name: -bad\nmemory_mib: 0\nvcpus: 0\n")
    assert "  name: invalid domain name '-bad'" in msg
    assert "  memory_mib: Input should be greater than or equal to 16" in msg
    assert "  vcpus: Input should be greater than or equal to 1" in msg


def test_value_error_prefix_is_removed() -> None:
    msg = config_error("name: web\nvcpus: 4\nmax_vcpus: 2\n")
    assert "Value error" not in msg
    assert "(top level): max_vcpus (2) is below vcpus (4)" in msg


@pytest.mark.parametrize("text", ["name: [unclosed\n", '{"name": ', "a: b: c\n", "\t- x"])
def test_syntax_errors(text: str) -> None:
    assert "not valid YAML or JSON" in config_error(text)


@pytest.mark.parametrize(
    ("text", "kind"), [("", "NoneType"), ("- a\n- b\n", "list"), ("42\n", "int"), ("web\n", "str")]
)
def test_not_a_mapping(text: str, kind: str) -> None:
    msg = config_error(text)
    assert "expected a mapping of fields" in msg
    assert f"got {kind}" in msg


def test_yaml_tags_are_not_executed() -> None:
    msg = config_error("name: !!python/object/apply:os.system ['true']\n")
    assert "not valid YAML or JSON" in msg


def test_file_over_1_mib_is_refused() -> None:
    text = "name: web\n# " + "x" * MAX_FILE_BYTES + "\n"
    with pytest.raises(ConfigError, match="larger than 1 MiB"):
        parse_mapping(text, "big.yaml")


def test_size_limit_counts_bytes_not_characters() -> None:
    text = "name: web\n# " + "\u00e9" * (MAX_FILE_BYTES // 2 + 10) + "\n"
    assert len(text) < MAX_FILE_BYTES
    with pytest.raises(ConfigError, match="larger than 1 MiB"):
        parse_mapping(text, "big.yaml")


def test_file_just_under_the_limit_is_read() -> None:
    head = "name: web\n# "
    text = head + "x" * (MAX_FILE_BYTES - len(head) - 1) + "\n"
    assert len(text.encode()) == MAX_FILE_BYTES
    assert domain_from_text(text).name == "web"


def test_domain_from_mapping_uses_source_in_message() -> None:
    with pytest.raises(ConfigError, match=r"^api: invalid domain definition"):
        domain_from_mapping({"name": ""}, "api")


def test_unquoted_all_digit_mac_stays_a_string() -> None:
    # YAML 1.1 reads 52:54:00:12:34:56 as a base-60 integer; our loader does not.
    d = domain_from_text("name: web\nnics:\n  - mac: 52:54:00:12:34:56\n")
    assert d.nics[0].mac == "52:54:00:12:34:56"


def test_base60_is_not_a_number() -> None:
    assert 'memory_mib: expected an integer, got "1:30"' in config_error(
        "name: web\nmemory_mib: 1:30\n"
    )


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("vcpus: true", "vcpus: expected an integer, got true"),
        ("vcpus: 1.0", "vcpus: expected an integer, got 1.0"),
        ('memory_mib: "64"', 'memory_mib: expected an integer, got "64"'),
        ("max_vcpus: false", "max_vcpus: expected an integer, got false"),
        ("serial: 1", "serial: expected a boolean (true or false), got 1"),
        ('boot: {uefi: "true"}', 'boot.uefi: expected a boolean (true or false), got "true"'),
        ("topology: {sockets: 1.5}", "topology.sockets: expected an integer, got 1.5"),
        ("graphics: {type: vnc, port: '5901'}", 'graphics.port: expected an integer, got "5901"'),
        ("disks: [{path: /d.img, readonly: 0}]",
         "disks.0.readonly: expected a boolean (true or false), got 0"),
        ("numa: {cells: [{cpus: '0', memory_mib: 64.0}]}",
         "numa.cells.0.memory_mib: expected an integer, got 64.0"),
    ],
)  # fmt: skip
def test_lax_numbers_and_flags_are_refused(text: str, expect: str) -> None:
    # lax conversion would define a guest the user did not write (issue 12)
    body = (
        f"name: web\n{text}\n" if "memory_mib" in text else f"name: web\nmemory_mib: 64\n{text}\n"
    )
    assert expect in config_error(body)
    assert expect in config_error(json.dumps(yaml.safe_load(body)))  # the API's JSON too


def test_strict_types_keep_enums_as_strings() -> None:
    dom = domain_from_text(
        "name: web\nmemory_mib: 64\nvcpus: 2\nserial: false\n"
        "disks: [{path: /d.img, bus: virtio, format: raw, device: disk}]\n"
        "nics: [{type: user, model: e1000}]\ngraphics: {type: vnc, port: 5901}\n"
    )
    assert (dom.vcpus, dom.serial, dom.disks[0].bus.value) == (2, False, "virtio")
    assert dom.graphics.port == 5901


@pytest.mark.parametrize(
    "text",
    [
        "name: x\ntitle: " + "[" * 50_000 + "]" * 50_000 + "\n",
        '{"name": "x", "title": ' + "[" * 50_000 + "]" * 50_000 + "}",
    ],
    ids=["yaml", "json"],
)
def test_deep_nesting_is_a_config_error(text: str) -> None:
    assert "nested too deeply" in config_error(text)
