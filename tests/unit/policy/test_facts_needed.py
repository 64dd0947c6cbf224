"""`facts_needed`: what the proxy looks up in the engine before `decide`.

Nothing is looked up with ECI off, for routes without a facts rule, or for a body the policy
cannot read (`decide` refuses it without facts).
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.unit.policy.cases import OFF, ON, create, request

from eci.policy import FactsQuery, facts_needed

Q = FactsQuery


NEEDED = [
    ("plain-create", create({"Image": "busybox"}), Q()),
    (
        "create-everything",
        create(
            {
                "Image": "busybox",
                "Volumes": {"/home/u/v:/v": {}, "/anon": {}},
                "HostConfig": {
                    "Binds": ["/home/u/x:/x:ro", "data:/data", "/anon2"],
                    "Mounts": [
                        {"Type": "bind", "Source": "/srv", "Target": "/srv"},
                        {"Type": "volume", "Source": "mvol", "Target": "/m"},
                        {"Type": "tmpfs", "Target": "/t"},
                    ],
                    "VolumesFrom": ["c1:ro", "c2"],
                    "PidMode": "container:c3",
                    "IpcMode": "Container:c4",
                    "NetworkMode": "mynet",
                },
                "NetworkingConfig": {"EndpointsConfig": {"net2": {}, "bridge": {}, "host": {}}},
            }
        ),
        Q(
            containers=frozenset({"c1", "c2", "c3", "c4"}),
            volumes=frozenset({"data", "mvol"}),
            networks=frozenset({"mynet", "net2"}),
            paths=frozenset({"/home/u/v", "/home/u/x", "/srv"}),
            image="busybox",
        ),
    ),
    (
        "create-network-container",
        create({"Image": "b", "HostConfig": {"NetworkMode": "container:c9"}}),
        Q(containers=frozenset({"c9"})),
    ),
    (
        "create-builtin-networks",
        create({"Image": "b", "HostConfig": {"NetworkMode": "Bridge"}}),
        Q(),
    ),
    (
        "create-legacy-top-level",
        create({"Image": "b", "Binds": ["/home/u/x:/x"], "NetworkMode": "mynet"}),
        Q(networks=frozenset({"mynet"}), paths=frozenset({"/home/u/x"}), image="b"),
    ),
    (
        "create-inline-volume-device",
        create(
            {
                "Image": "b",
                "HostConfig": {
                    "Mounts": [
                        {
                            "Type": "volume",
                            "Source": "v",
                            "VolumeOptions": {
                                "DriverConfig": {
                                    "Options": {"type": "none", "o": "bind", "device": "/home/u/d"}
                                }
                            },
                        }
                    ]
                },
            }
        ),
        Q(paths=frozenset({"/home/u/d"}), image="b"),
    ),
    (
        "exec",
        request("POST", "/containers/c1/exec", {"Cmd": ["sh"]}),
        Q(containers=frozenset({"c1"})),
    ),
    ("start", request("POST", "/v1.41/containers/c1/start"), Q(containers=frozenset({"c1"}))),
    (
        "archive",
        request("GET", "/containers/c1/archive?path=/x"),
        Q(containers=frozenset({"c1"})),
    ),
    (
        "volume-device",
        request("POST", "/volumes/create", {"DriverOpts": {"o": "bind", "device": "/home/u/d"}}),
        Q(paths=frozenset({"/home/u/d"})),
    ),
    ("volume-plain", request("POST", "/volumes/create", {"Name": "v"}), Q()),
    (
        "network-connect",
        request("POST", "/networks/my/net/connect", {"Container": "c1"}),
        Q(networks=frozenset({"my/net"}), containers=frozenset({"c1"})),  # its owner
    ),
    (
        "service",
        request(
            "POST",
            "/services/create",
            {
                "TaskTemplate": {
                    "ContainerSpec": {
                        "Mounts": [
                            {"Type": "bind", "Source": "/home/u/x"},
                            {"Type": "volume", "Source": "sv"},
                        ]
                    },
                    "Networks": [{"Target": "n1"}, {"Target": ""}],
                },
                "Networks": [{"Target": "n2"}],
            },
        ),
        Q(
            volumes=frozenset({"sv"}),
            networks=frozenset({"n1", "n2"}),
            paths=frozenset({"/home/u/x"}),
        ),
    ),
    ("read", request("GET", "/containers/json"), Q()),
    ("unknown", request("POST", "/nowhere", {"Binds": ["/etc:/e"]}), Q()),
]


@pytest.mark.parametrize(("req", "query"), [c[1:] for c in NEEDED], ids=[c[0] for c in NEEDED])
def test_facts_needed(req: Any, query: FactsQuery) -> None:
    assert facts_needed(req, ON) == query
    assert facts_needed(req, OFF) == FactsQuery()


@pytest.mark.parametrize(
    "req",
    [
        create(b"not json"),
        create(b"[]"),
        create(b'{"Image": "b", "HostConfig": {}, "hostconfig": {}}'),
        create(b'{"Image": "b", "HostConfig": {"Binds": "x"}}'),
        request("POST", "/volumes/create", {"DriverOpts": {"type": "ext4", "device": "/dev/sda"}}),
        request("POST", "/volumes/create", {"DriverOpts": {"device": 1}}),
        request("POST", "/services/create", b'{"TaskTemplate": 1}'),
    ],
    ids=[
        "not-json",
        "array",
        "ambiguous",
        "binds-not-list",
        "refused-options",
        "bad-option",
        "bad-template",
    ],
)
def test_unreadable_or_refused_bodies_need_no_facts(req: Any) -> None:
    assert facts_needed(req, ON) == FactsQuery()


def test_facts_query_truthiness() -> None:
    assert not FactsQuery()
    assert FactsQuery(containers=frozenset({"c"}))
    assert FactsQuery(volumes=frozenset({"v"}))
    assert FactsQuery(networks=frozenset({"n"}))
    assert FactsQuery(paths=frozenset({"/p"}))
