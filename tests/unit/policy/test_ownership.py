"""Containers belong to their creator: every owned route, by the owner, root, another user,
an unknown requester, on unowned containers and with the setting off; sharing at create;
the forwarded request naming the container by its full id."""

from __future__ import annotations

import dataclasses

import pytest
from tests.unit.policy.cases import FACTS, ON, create, forwarded, request

from eci.contract.labels import REQUESTER_LABEL
from eci.dockerapi.routes import ROUTES
from eci.errors import owner_message
from eci.policy import ContainerFacts, Deny, decide, facts_needed, pin_target
from eci.policy.ownership import OWNED

OWNER, OTHER = (1000, 1000), (2000, 2000)
FULL_ID = "f" * 64
OWNED_C = ContainerFacts(FULL_ID, "sysbox-runc", pid=4242, owner=1000)
UNOWNED_C = ContainerFacts("u" * 64, "sysbox-runc", pid=4343)
ENGINE = dataclasses.replace(
    FACTS,
    containers={**FACTS.containers, "mine": OWNED_C, "f": OWNED_C, "open": UNOWNED_C},
    execs={"exec-1": OWNED_C, "exec-open": UNOWNED_C},
)
OWNERSHIP_OFF = dataclasses.replace(ON, container_ownership=False)
BODIES = {"container.exec_create": {"Cmd": ["true"]}, "container.update": {"CpuShares": 512}}


def _target(route_name: str, ref: str) -> str:
    """A request target of ``route_name`` acting on container (or exec instance) ``ref``."""
    if route_name == "image.commit":
        return f"/v1.41/commit?container={ref}&repo=x"
    route = next(r for r in ROUTES if r.name == route_name)
    return "/v1.41" + route.template.replace("{id*}", "mynet").replace("{id}", ref)


def _request(route_name: str, ref: str) -> object:
    method = next(r.method for r in ROUTES if r.name == route_name)
    body = BODIES.get(route_name)
    if route_name.startswith("network."):
        body = {"Container": ref}
    if route_name.startswith("exec."):  # the exec instance in that container
        ref = {"mine": "exec-1", "open": "exec-open"}.get(ref, "exec-missing")
    return request(method, _target(route_name, ref), body)


def _decide(route_name: str, ref: str, requester: tuple[int, int] | None, ctx=ON):  # type: ignore[no-untyped-def]
    facts = dataclasses.replace(ENGINE, requester=requester)
    return decide(_request(route_name, ref), ctx, facts)  # type: ignore[arg-type]


def _owner_refusal(decision: object) -> bool:
    return isinstance(decision, Deny) and decision.rule == "container-owner"


@pytest.mark.parametrize("route_name", sorted(OWNED))
def test_another_user_is_refused_naming_the_owner_s_uid(route_name: str) -> None:
    decision = _decide(route_name, "mine", OTHER)
    assert _owner_refusal(decision), decision
    assert isinstance(decision, Deny)
    named = FULL_ID if route_name.startswith("exec.") else "mine"
    assert decision.message == owner_message("container", named, 1000, OWNED[route_name])
    assert decision.status == 403


@pytest.mark.parametrize("route_name", sorted(OWNED))
@pytest.mark.parametrize(
    ("ref", "requester", "ctx"),
    [
        ("mine", OWNER, ON),
        ("mine", (0, 0), ON),
        ("mine", OTHER, OWNERSHIP_OFF),
        ("open", OTHER, ON),
        ("open", None, ON),
        ("missing", OTHER, ON),
    ],
    ids=["owner", "root", "ownership-off", "unowned", "unowned-unknown-requester", "no-such"],
)
def test_who_may_act(route_name: str, ref: str, requester: tuple[int, int] | None, ctx) -> None:  # type: ignore[no-untyped-def]
    assert not _owner_refusal(_decide(route_name, ref, requester, ctx))


@pytest.mark.parametrize("route_name", sorted(OWNED))
def test_an_unknown_requester_owns_nothing(route_name: str) -> None:
    assert _owner_refusal(_decide(route_name, "mine", None))


@pytest.mark.parametrize(
    "route_name",
    ["container.inspect", "container.list", "container.top", "container.stats",
     "container.changes", "container.wait", "exec.inspect", "container.prune"],
)  # fmt: skip
def test_what_docker_shows_everyone_stays_open(route_name: str) -> None:
    assert route_name not in OWNED


@pytest.mark.parametrize("route_name", sorted(OWNED))
def test_the_target_is_looked_up_only_with_ownership_on(route_name: str) -> None:
    req = _request(route_name, "mine")
    query = facts_needed(req, ON)  # type: ignore[arg-type]
    wanted = query.execs if route_name.startswith("exec.") else query.containers
    assert wanted == {"exec-1" if route_name.startswith("exec.") else "mine"}
    rule_only = facts_needed(req, OWNERSHIP_OFF)  # type: ignore[arg-type]
    assert "mine" not in rule_only.containers or route_name in {
        "container.exec_create",
        "container.start",
        "container.archive_get",
        "container.archive_head",
        "container.archive_put",
        "container.copy",
    }


SHARING = [
    ({"HostConfig": {"NetworkMode": "container:mine"}}, "share the network namespace of"),
    ({"HostConfig": {"PidMode": "container:mine"}}, "share the pid namespace of"),
    ({"HostConfig": {"IpcMode": "container:mine"}}, "share the ipc namespace of"),
    ({"HostConfig": {"VolumesFrom": ["mine:ro"]}}, "mount the volumes of"),
    ({"NetworkMode": "container:mine"}, "share the network namespace of"),  # legacy top level
]


@pytest.mark.parametrize(("extra", "action"), SHARING)
def test_sharing_another_user_s_container_at_create_is_refused(
    extra: dict[str, object], action: str
) -> None:
    body = {"Image": "busybox", **extra}
    decision = decide(create(body), ON, dataclasses.replace(ENGINE, requester=OTHER))
    assert isinstance(decision, Deny)
    assert decision.message == owner_message("container", "mine", 1000, action)


@pytest.mark.parametrize(("extra", "action"), SHARING)
def test_the_owner_shares_by_the_full_id(extra: dict[str, object], action: str) -> None:
    body = {"Image": "busybox", **extra}
    sent = forwarded(
        create(body), decide(create(body), ON, dataclasses.replace(ENGINE, requester=OWNER))
    )
    hc = sent.get("HostConfig", sent)
    modes = [hc.get(k) for k in ("NetworkMode", "PidMode", "IpcMode") if hc.get(k)]
    assert modes + hc.get("VolumesFrom", []) in ([f"container:{FULL_ID}"], [f"{FULL_ID}:ro"])


def test_root_s_create_is_labelled_too_so_an_image_label_never_names_an_owner() -> None:
    body = {"Image": "busybox"}
    sent = forwarded(
        create(body), decide(create(body), ON, dataclasses.replace(ENGINE, requester=(0, 0)))
    )
    assert sent["Labels"] == {REQUESTER_LABEL: "0:0"}


@pytest.mark.parametrize(
    ("method", "target", "pinned"),
    [
        ("POST", "/v1.41/containers/mine/exec", f"/containers/{FULL_ID}/exec"),
        ("POST", "/containers/f/start", f"/containers/{FULL_ID}/start"),  # an id prefix
        ("DELETE", "/v1.41/containers/mine", f"/containers/{FULL_ID}"),
        ("POST", "/v1.41/containers/missing/kill", "/containers/missing/kill"),
        ("GET", "/v1.41/containers/json", "/containers/json"),
        ("POST", "/v1.41/networks/mine/connect", "/networks/mine/connect"),
    ],
)
def test_the_container_is_forwarded_by_its_full_id(method: str, target: str, pinned: str) -> None:
    assert pin_target(request(method, target), ENGINE).path == pinned


def test_a_commit_names_its_container_by_the_full_id() -> None:
    req = request("POST", "/v1.41/commit?container=mine&repo=x")
    query = pin_target(req, ENGINE).query
    assert query == {"container": (FULL_ID,), "repo": ("x",)}


def test_a_network_connect_names_its_container_by_the_full_id() -> None:
    req = request("POST", "/v1.41/networks/mynet/connect", {"Container": "mine"})
    sent = forwarded(req, decide(req, ON, dataclasses.replace(ENGINE, requester=OWNER)))
    assert sent == {"Container": FULL_ID}


VOLUMES = dataclasses.replace(
    ENGINE, volume_owners={"hers": frozenset({1000}), "anyone": frozenset()}
)
MOUNTING = [
    {"HostConfig": {"Binds": ["hers:/data"]}},
    {"HostConfig": {"Mounts": [{"Type": "volume", "Source": "hers", "Target": "/data"}]}},
]


@pytest.mark.parametrize("extra", MOUNTING, ids=["bind", "mount"])
def test_another_user_s_volume_cannot_be_mounted(extra: dict[str, object]) -> None:
    body = {"Image": "busybox", **extra}
    decision = decide(create(body), ON, dataclasses.replace(VOLUMES, requester=OTHER))
    assert isinstance(decision, Deny)
    assert decision.rule == "volume-owner"
    assert decision.message == owner_message("volume", "hers", 1000, "mount")


@pytest.mark.parametrize("extra", MOUNTING, ids=["bind", "mount"])
@pytest.mark.parametrize(
    ("requester", "ctx"), [(OWNER, ON), ((0, 0), ON), (OTHER, OWNERSHIP_OFF)],
    ids=["owner", "root", "ownership-off"],
)  # fmt: skip
def test_a_volume_is_mounted_by_its_owner_root_or_anyone_when_off(
    extra: dict[str, object], requester: tuple[int, int], ctx: object
) -> None:
    body = {"Image": "busybox", **extra}
    decision = decide(create(body), ctx, dataclasses.replace(VOLUMES, requester=requester))  # type: ignore[arg-type]
    assert not isinstance(decision, Deny), decision


def test_a_volume_of_no_one_is_open() -> None:
    body = {"Image": "busybox", "HostConfig": {"Binds": ["anyone:/data"]}}
    assert not isinstance(
        decide(create(body), ON, dataclasses.replace(VOLUMES, requester=OTHER)), Deny
    )


def test_another_user_s_volume_cannot_be_removed() -> None:
    req = request("DELETE", "/v1.41/volumes/hers")
    assert facts_needed(req, ON).volumes == {"hers"}
    decision = decide(req, ON, dataclasses.replace(VOLUMES, requester=OTHER))
    assert isinstance(decision, Deny)
    assert decision.message == owner_message("volume", "hers", 1000, "remove")
    assert not isinstance(decide(req, ON, dataclasses.replace(VOLUMES, requester=OWNER)), Deny)


def test_a_created_volume_is_labelled_with_its_owner() -> None:
    req = request("POST", "/v1.41/volumes/create", {"Name": "v", "Labels": {"a": "b"}})
    sent = forwarded(req, decide(req, ON, dataclasses.replace(VOLUMES, requester=OWNER)))
    assert sent["Labels"] == {"a": "b", REQUESTER_LABEL: "1000:1000"}


def test_a_volume_create_cannot_name_the_owner() -> None:
    req = request(
        "POST", "/v1.41/volumes/create", {"Name": "v", "Labels": {REQUESTER_LABEL: "1:1"}}
    )
    decision = decide(req, ON, dataclasses.replace(VOLUMES, requester=OTHER))
    assert isinstance(decision, Deny)
    assert decision.rule == "reserved-label"
