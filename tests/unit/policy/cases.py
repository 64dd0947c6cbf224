"""Shared request builders and hand-made engine facts for the policy tests."""

from __future__ import annotations

import json
from typing import Any

from eci.dockerapi import gojson
from eci.dockerapi.request import ApiRequest, parse_request
from eci.policy import (
    Allow,
    ContainerFacts,
    Decision,
    Deny,
    Facts,
    MountFact,
    PolicyContext,
    Rewrite,
)

ON = PolicyContext(eci_enabled=True)
OFF = PolicyContext(eci_enabled=False)
BUSYBOX = "docker.io/library/busybox"

#: The engine as the proxy would have looked it up: containers by runtime and mounts,
#: volumes by their local driver options, networks by driver, symlinks resolved.
FACTS = Facts(
    containers={
        "runc-c": ContainerFacts("runc-c", "runc"),
        "old-c": ContainerFacts("old-c", ""),
        "eci-c": ContainerFacts("eci-c", "sysbox-runc"),
        "eci-running": ContainerFacts("eci-running-id", "sysbox-runc", pid=4242),
        "eci-user": ContainerFacts("eci-user-id", "sysbox-runc", pid=4242, user="app:staff"),
        "runc-running": ContainerFacts("runc-running-id", "runc", pid=4343),
        "binder": ContainerFacts(
            "binder", "sysbox-runc", (MountFact("bind", "/etc/docker", "/cfg"),)
        ),
        "sock-binder": ContainerFacts(
            "sock-binder", "sysbox-runc", (MountFact("bind", "/var/run/docker.sock", "/s"),)
        ),
        "link-binder": ContainerFacts(
            "link-binder", "sysbox-runc", (MountFact("bind", "/home/u/link", "/l"),)
        ),
        "safe-binder": ContainerFacts(
            "safe-binder",
            "sysbox-runc",
            (MountFact("bind", "/home/u/x", "/data"), MountFact("volume", "/var/lib/x", "/v")),
        ),
        "missing": None,
    },
    volume_options={
        "devvol": {"type": "none", "o": "bind", "device": "/etc/docker"},
        "sockvol": {"type": "none", "o": "bind", "device": "/run/docker.sock"},
        "linkvol": {"type": "none", "o": "bind", "device": "/home/u/link"},
        "homevol": {"type": "none", "o": "bind", "device": "/home/u/x"},
        "overlayvol": {"type": "overlay", "o": "lowerdir=/etc/docker", "device": "overlay"},
        "plainvol": {},
        "othervol": None,
    },
    network_drivers={"hostnet": "host", "mynet": "bridge", "gone": None},
    real_paths={
        "/home/u/link": "/etc/docker",
        "/home/u/sock": "/run/docker.sock",
        "/home/u/x": "/home/u/x",
    },
)


def request(
    method: str,
    target: str,
    body: Any = None,
    content_type: str | None = "application/json",
) -> ApiRequest:
    """A parsed request; ``body`` is JSON-encoded unless it is bytes already."""
    raw = body if isinstance(body, bytes) else b"" if body is None else json.dumps(body).encode()
    return parse_request(method, target, raw, content_type)


def create(body: Any, target: str = "/v1.41/containers/create") -> ApiRequest:
    return request("POST", target, body)


def forwarded(request: ApiRequest, decision: Decision) -> Any:
    """The body dockerd would receive for an allowed request, decoded."""
    assert not isinstance(decision, Deny), decision
    if isinstance(decision, Rewrite):
        return gojson.decode(decision.body)
    assert isinstance(decision, Allow)
    return request.json
