"""Safe parsing of libvirt XML and a strict walker over it.

``Node`` wraps an element: every attribute and child must be consumed by the
mapping code (or ignored on purpose) before ``done()``; anything left over is
a ConfigError naming its path, so nothing is silently dropped.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import defusedxml.ElementTree as DET
from defusedxml import DefusedXmlException

from virtkit.errors import ConfigError

LIBOSINFO_NS = "http://libosinfo.org/xmlns/libvirt/domain/1.0"
VIRTKIT_NS = "http://virtkit.org/xmlns/domain/1.0"
MAX_XML_BYTES = 1 << 20
_UNITS = {
    "b": 1,
    "bytes": 1,
    "KB": 10**3,
    "k": 1024,
    "KiB": 1024,
    "MB": 10**6,
    "M": 1024**2,
    "MiB": 1024**2,
    "GB": 10**9,
    "G": 1024**3,
    "GiB": 1024**3,
    "TB": 10**12,
    "T": 1024**4,
    "TiB": 1024**4,
}
# Live-state and addressing noise virsh dumpxml writes on devices: virtkit assigns its own.
DEVICE_NOISE = ("address", "alias")


def unsupported(path: str, what: str = "element") -> ConfigError:
    return ConfigError(
        f"unsupported {what} {path} in domain XML: virtkit cannot honour it; "
        "remove it (or change it to a supported value) and try again"
    )


class Node:
    """An element whose attributes and children must all be consumed before ``done``."""

    def __init__(self, el: ET.Element, path: str) -> None:
        self.el, self.path = el, path
        self._attrs: set[str] = set()
        self._kids: dict[int, Node | None] = {}
        self._text_used = False

    def attr(self, name: str, default: str | None = None) -> str | None:
        self._attrs.add(name)
        return self.el.get(name, default)

    def need(self, name: str) -> str:
        value = self.attr(name)
        if value is None:
            raise ConfigError(f"domain XML: {self.path} needs the attribute {name}")
        return value

    def only(self, name: str, *allowed: str, default: str | None = None) -> str | None:
        value = self.attr(name, default)
        if value is not None and value not in allowed:
            raise unsupported(f"{self.path}/@{name}={value!r}", "value")
        return value

    def ignore_attrs(self, *names: str) -> None:
        self._attrs.update(names)

    def text(self) -> str:
        self._text_used = True
        return (self.el.text or "").strip()

    def children(self, tag: str) -> list[Node]:
        out = []
        for i, kid in enumerate(self.el):
            if kid.tag == tag:
                node = Node(kid, f"{self.path}/{local(tag)}")
                self._kids[i] = node
                out.append(node)
        return out

    def child(self, tag: str) -> Node | None:
        found = self.children(tag)
        if len(found) > 1:
            raise ConfigError(
                f"domain XML: {self.path}/{local(tag)} appears {len(found)} times; give it once"
            )
        return found[0] if found else None

    def ignore(self, *tags: str) -> None:
        for i, kid in enumerate(self.el):
            if kid.tag in tags:
                self._kids[i] = None

    def done(self) -> None:
        for name, value in self.el.attrib.items():
            if name not in self._attrs:
                raise unsupported(f"{self.path}/@{name}={value!r}", "attribute")
        text = (self.el.text or "").strip()
        if text and not self._text_used:
            raise unsupported(f"{self.path} (text {text[:40]!r})", "content")
        for i, kid in enumerate(self.el):
            if i not in self._kids:
                raise unsupported(f"{self.path}/{local(kid.tag)}")
            node = self._kids[i]
            if node is not None:
                node.done()


def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else "(comment)"


def parse_xml(text: str) -> ET.Element:
    if len(text.encode("utf-8", "replace")) > MAX_XML_BYTES:
        raise ConfigError("domain XML is larger than 1 MiB; a domain definition is smaller")
    try:
        root = DET.fromstring(text, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise ConfigError(
            f"domain XML refused: {type(exc).__name__} (DTDs and entities are "
            "not allowed; remove the <!DOCTYPE ...> block)"
        ) from None
    except ET.ParseError as exc:
        raise ConfigError(f"domain XML is not well-formed: {exc}") from None
    if root.tag != "domain":
        raise ConfigError(f"expected a <domain> document, got <{local(root.tag)}>")
    return root  # type: ignore[no-any-return]


def mib(node: Node) -> int:
    unit = node.attr("unit", "KiB") or "KiB"
    if unit not in _UNITS:
        raise unsupported(f"{node.path}/@unit={unit!r}", "unit")
    raw = node.text()
    if not raw.isdigit():
        raise ConfigError(f"domain XML: {node.path} must be a whole number, got {raw!r}")
    size = int(raw) * _UNITS[unit]
    if size % (1024**2):
        raise ConfigError(f"domain XML: {node.path} is {raw} {unit}, not a whole number of MiB")
    return size // 1024**2


def to_int(node: Node, value: str | None, what: str) -> int:
    if value is None or not value.strip().lstrip("-").isdigit():
        raise ConfigError(f"domain XML: {node.path} {what} must be a whole number, got {value!r}")
    return int(value)
