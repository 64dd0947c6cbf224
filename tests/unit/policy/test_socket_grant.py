"""Granting the Docker socket: allowed images get a filtered socket of their own, pinned to the
image that was checked; everything else keeps the socket-mount refusal."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from tests.unit.policy.cases import FACTS, ON, create, forwarded, request
from tests.unit.policy.test_decide import SOCKET, SOCKETS

from eci.contract.grants import grant_path
from eci.contract.labels import GRANT_LABEL
from eci.errors import restricted_mount_message
from eci.policy import ContainerFacts, Deny, MountFact, PolicyContext, Rewrite, decide
from eci.policy.imagelist import ImageIdentity, ImageList

GRANTS = "/srv/eci/run/private/grants"
TOKEN = "5a1f"
GRANTED = grant_path(GRANTS, TOKEN)
CLI_ID = "sha256:" + "a" * 64
DIGEST = "sha256:" + "c" * 64
CLI = ImageIdentity(CLI_ID, frozenset({("docker.io/library/docker", DIGEST)}), ("sha256:1",))

ALLOWING = dataclasses.replace(
    ON, image_list=ImageList.from_settings(["docker:cli"], True), grants_dir=GRANTS
)
WITH_IMAGE = dataclasses.replace(
    FACTS,
    image=CLI,
    resolved={"docker.io/library/docker:cli": DIGEST},
    grant_token=TOKEN,
)

REDIRECTABLE = [c for c in SOCKETS if c[0] not in ("named-volume", "volumes-from")]


def _binds(body: dict[str, Any]) -> list[str]:
    found = list(body.get("Binds") or []) + list(body.get("Volumes") or {})
    hc = body.get("HostConfig") or {}
    found += hc.get("Binds") or []
    found += [m["Source"] for m in hc.get("Mounts") or []]
    return found


@pytest.mark.parametrize("body", [c[1] for c in REDIRECTABLE], ids=[c[0] for c in REDIRECTABLE])
def test_an_allowed_image_gets_its_own_socket_in_every_spelling(body: dict[str, Any]) -> None:
    req = create({"Image": "docker:cli", **body})
    decision = decide(req, ALLOWING, WITH_IMAGE)
    assert isinstance(decision, Rewrite), decision
    assert decision.grant is not None
    assert decision.grant.token == TOKEN
    assert decision.grant.image == "docker:cli"
    assert decision.grant.match.entry.text == "docker:cli"
    sent = forwarded(req, decision)
    assert all(b.startswith(GRANTED) for b in _binds(sent)), sent
    assert not any("docker.sock:" in b and not b.startswith(GRANTED) for b in _binds(sent))
    assert sent["Image"] == CLI_ID  # pinned: a retag after the check changes nothing
    assert sent["Labels"][GRANT_LABEL] == TOKEN
    hc = sent.get("HostConfig") or sent
    assert hc["Runtime"] == "sysbox-runc"


def test_user_labels_are_kept_and_the_grant_label_is_eci_s() -> None:
    body = {
        "Image": "docker:cli",
        "Labels": {"team": "a", GRANT_LABEL: "forged"},
        "HostConfig": {"Binds": ["/run/docker.sock:/var/run/docker.sock:ro"]},
    }
    req = create(body)
    sent = forwarded(req, decide(req, ALLOWING, WITH_IMAGE))
    assert sent["Labels"] == {"team": "a", GRANT_LABEL: TOKEN}
    assert sent["HostConfig"]["Binds"] == [f"{GRANTED}:/var/run/docker.sock:ro"]


@pytest.mark.parametrize("name", ["named-volume", "volumes-from"])
def test_sockets_through_volumes_stay_refused(name: str) -> None:
    body = dict(SOCKETS)[name]
    decision = decide(create({"Image": "docker:cli", **body}), ALLOWING, WITH_IMAGE)
    assert isinstance(decision, Deny)
    assert decision.rule == "docker-socket-mount"


def _denied_socket(ctx: PolicyContext, facts: Any, image: str = "docker:cli") -> None:
    body = {"Image": image, "HostConfig": {"Binds": ["/var/run/docker.sock:/var/run/docker.sock"]}}
    decision = decide(create(body), ctx, facts)
    assert isinstance(decision, Deny)
    assert (decision.rule, decision.message, decision.status) == (
        "docker-socket-mount",
        SOCKET,
        403,
    )


def test_an_image_not_in_the_list_is_refused() -> None:
    other = ImageIdentity(CLI_ID, frozenset({("docker.io/library/busybox", DIGEST)}), ("l",))
    _denied_socket(ALLOWING, dataclasses.replace(WITH_IMAGE, image=other))


def test_nothing_is_granted_without_the_facts_or_a_grants_dir() -> None:
    _denied_socket(ALLOWING, dataclasses.replace(WITH_IMAGE, image=None))
    _denied_socket(ALLOWING, dataclasses.replace(WITH_IMAGE, grant_token=None))
    _denied_socket(dataclasses.replace(ALLOWING, grants_dir=""), WITH_IMAGE)
    _denied_socket(ON, WITH_IMAGE)  # empty imageList


def test_the_registry_not_answering_refuses() -> None:
    _denied_socket(ALLOWING, dataclasses.replace(WITH_IMAGE, resolved={}))


def test_other_mounts_of_a_granted_container_are_still_checked() -> None:
    body = {
        "Image": "docker:cli",
        "HostConfig": {"Binds": ["/run/docker.sock:/s", "/etc/docker:/cfg"]},
    }
    decision = decide(create(body), ALLOWING, WITH_IMAGE)
    assert isinstance(decision, Deny)
    assert decision.message == restricted_mount_message("/etc/docker")


def test_a_user_cannot_name_a_grant_socket_themselves() -> None:
    body = {"Image": "busybox", "HostConfig": {"Binds": [f"{GRANTS}/other/docker.sock:/s"]}}
    ctx = dataclasses.replace(
        ALLOWING,
        host_paths=dataclasses.replace(ON.host_paths, restricted=("/etc/docker", "/srv/eci")),
    )
    decision = decide(create(body), ctx, WITH_IMAGE)
    assert isinstance(decision, Deny)
    assert decision.rule == "restricted-mount"


GRANTED_C = ContainerFacts(
    "g", "sysbox-runc", (MountFact("bind", GRANTED, "/var/run/docker.sock"),), grant=TOKEN
)
STOLEN_C = ContainerFacts(
    "s", "sysbox-runc", (MountFact("bind", GRANTED, "/var/run/docker.sock"),), grant="other"
)


@pytest.mark.parametrize(
    ("method", "target", "body"),
    [("POST", "/containers/c/start", None), ("GET", "/containers/c/archive?path=/etc", None)],
)
def test_start_and_cp_accept_a_container_s_own_grant_only(
    method: str, target: str, body: Any
) -> None:
    ctx = dataclasses.replace(
        ALLOWING,
        host_paths=dataclasses.replace(ON.host_paths, restricted=("/etc/docker", "/srv/eci")),
    )
    own = dataclasses.replace(FACTS, containers={"c": GRANTED_C})
    assert not isinstance(decide(request(method, target, body), ctx, own), Deny)
    stolen = dataclasses.replace(FACTS, containers={"c": STOLEN_C})
    assert isinstance(decide(request(method, target, body), ctx, stolen), Deny)


def test_the_grant_label_is_reserved_without_a_grant() -> None:
    body = {"Image": "busybox", "Labels": {GRANT_LABEL: TOKEN}}
    decision = decide(create(body), ALLOWING, WITH_IMAGE)
    assert isinstance(decision, Deny)
    assert decision.rule == "reserved-label"
