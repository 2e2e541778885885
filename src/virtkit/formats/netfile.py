"""Our network file format (YAML or JSON) <-> model; libvirt network XML is detected too.

The file maps 1:1 onto ``virtkit.model.network.Network``::

    name: lan
    mode: nat                 # nat | routed | isolated
    bridge: vkbr1             # optional: virbrN is picked
    address: 10.77.0.1/24     # the host's address on the bridge
    dhcp_start: 10.77.0.100   # optional: the whole subnet after the host's address
    dhcp_end: 10.77.0.200
    dhcp_hosts:
      - {mac: "52:54:00:00:00:01", ip: 10.77.0.10, name: web}
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import ValidationError

from virtkit.errors import ConfigError
from virtkit.formats.domfile import describe_validation, parse_mapping
from virtkit.model.network import Network


def network_from_mapping(data: dict[str, Any], source: str = "network") -> Network:
    try:
        return Network.model_validate(data)
    except ValidationError as err:
        text = describe_validation(err, source).replace("invalid domain", "invalid network")
        raise ConfigError(text) from None


def network_from_text(text: str, source: str = "network") -> Network:
    """YAML, JSON or libvirt network XML -> a validated Network (raises ConfigError)."""
    if text.lstrip().startswith("<"):
        from virtkit.formats.libvirt_netxml import network_from_xml

        return network_from_xml(text)
    data = parse_mapping(text, source)
    return network_from_mapping(data, source)


def network_to_mapping(net: Network) -> dict[str, Any]:
    return net.model_dump(mode="json", exclude_defaults=True) | {"address": net.address}


def network_to_yaml(net: Network) -> str:
    return yaml.safe_dump(network_to_mapping(net), sort_keys=False)
