"""The socket's ``commandList``: each entry proven both ways in both modes, the exact message,
ping and unknown routes, and the deny/allow duality as a property over any request."""

from __future__ import annotations

import re
from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eci.dockerapi.request import ApiRequest, parse_request
from eci.dockerapi.routes import ROUTES
from eci.dockerapi.target import BadTarget
from eci.errors import PolicyDenied
from eci.policy.commands import (
    COMMANDS_BY_ROUTE,
    KNOWN_ENTRIES,
    ROUTES_BY_COMMAND,
    check_command,
    group_of,
)
from eci.settings.model import CommandList

Mode = Literal["deny", "allow"]


def req(line: str) -> ApiRequest:
    method, target = line.split(" ", 1)
    return parse_request(method, target)


def refusal(line: str, mode: Mode, *entries: str) -> PolicyDenied | None:
    request = req(line)
    try:
        check_command(request, request.target.raw, CommandList(type=mode, commands=entries))
    except PolicyDenied as denied:
        return denied
    return None


def blocked(line: str, mode: Mode, *entries: str) -> bool:
    denied = refusal(line, mode, *entries)
    assert denied is None or (denied.rule, denied.status) == ("docker-socket-command", 403)
    return denied is not None


#: entry -> (requests it covers, requests it does not)
CASES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "ps": (
        ("GET /v1.43/containers/json?all=1",),
        ("GET /containers/abc/json", "GET /images/json"),
    ),
    "run": (
        (
            "POST /v1.43/containers/create?name=x",
            "POST /containers/abc/attach?stream=1&stdout=1",
            "POST /containers/abc/start",
            "POST /containers/abc/wait?condition=next-exit",
            "POST /containers/abc/resize?h=24&w=80",
        ),
        (
            "POST /images/create?fromImage=alpine",
            "POST /containers/abc/kill",
            "DELETE /containers/abc",
            "POST /containers/abc/exec",
            "GET /containers/abc/json",
        ),
    ),
    "push": (
        ("POST /v1.43/images/myimage/push?tag=latest", "POST /images/reg:5000/a/b/push"),
        ("POST /images/create?fromImage=alpine", "POST /plugins/p/push", "POST /images/a/tag"),
    ),
    "build": (
        ("POST /v1.43/build?t=x", "POST /session", "POST /grpc", "POST /build/cancel?id=1"),
        ("POST /build/prune", "POST /images/create", "POST /commit?container=abc"),
    ),
    "exec": (
        (
            "POST /containers/abc/exec",
            "POST /exec/e1/start",
            "POST /exec/e1/resize?h=1&w=1",
            "GET /exec/e1/json",
        ),
        ("GET /containers/abc/json", "POST /containers/create", "POST /containers/abc/start"),
    ),
    "cp": (
        (
            "HEAD /containers/abc/archive?path=/etc",
            "GET /containers/abc/archive?path=/etc",
            "PUT /containers/abc/archive?path=/tmp",
            "POST /containers/abc/copy",
        ),
        ("GET /containers/abc/export", "POST /containers/abc/exec"),
    ),
    "pull": (
        ("POST /v1.43/images/create?fromImage=alpine&tag=latest",),
        ("POST /images/alpine/push", "POST /containers/create", "POST /plugins/pull"),
    ),
    "inspect": (
        ("GET /containers/abc/json", "GET /images/a/b/json", "GET /volumes/v", "GET /networks/n"),
        ("GET /exec/e1/json", "GET /containers/json", "GET /distribution/a/json"),
    ),
    "container*": (
        (
            "GET /containers/json",
            "POST /containers/create",
            "POST /containers/prune",
            "DELETE /containers/abc?force=1",
            "POST /exec/e1/start",
        ),
        ("GET /images/json", "POST /build", "GET /volumes", "POST /commit"),
    ),
    "image*": (
        (
            "GET /images/json",
            "POST /images/create?fromImage=a",
            "POST /images/a/b/push",
            "DELETE /images/a:1",
            "POST /images/load",
            "POST /commit?container=abc",
            "GET /distribution/alpine/json",
        ),
        ("POST /containers/create", "POST /build", "POST /session"),
    ),
    "volume*": (
        ("GET /volumes", "POST /volumes/create", "DELETE /volumes/v", "POST /volumes/prune"),
        ("GET /networks", "POST /containers/create"),
    ),
    "network*": (
        (
            "GET /networks",
            "POST /networks/create",
            "POST /networks/n/connect",
            "DELETE /networks/n",
        ),
        ("GET /volumes", "POST /containers/create"),
    ),
    "build*": (
        ("POST /build", "POST /build/prune", "POST /build/cancel", "POST /session", "POST /grpc"),
        ("POST /images/create", "POST /commit", "POST /containers/create"),
    ),
    "system*": (
        ("GET /info", "GET /version", "GET /events", "GET /system/df", "POST /auth"),
        ("GET /containers/json", "POST /containers/prune", "GET /images/json"),
    ),
}
COVERED = [(e, line) for e, (yes, _) in CASES.items() for line in yes]
NOT_COVERED = [(e, line) for e, (_, no) in CASES.items() for line in no]


@pytest.mark.parametrize(("entry", "line"), COVERED)
def test_entry_covers(entry: str, line: str) -> None:
    assert not blocked(line, "allow", entry)
    assert blocked(line, "deny", entry)
    assert blocked(line, "deny", entry.upper())  # case-insensitive


@pytest.mark.parametrize(("entry", "line"), NOT_COVERED)
def test_entry_does_not_cover(entry: str, line: str) -> None:
    assert blocked(line, "allow", entry)
    assert not blocked(line, "deny", entry)


def test_blocked_message_quotes_the_target_as_sent() -> None:
    request = req("POST /v1.43/images/myimage/push?tag=latest")
    with pytest.raises(PolicyDenied) as denied:
        check_command(request, request.target.raw, CommandList(type="deny", commands=("push",)))
    assert str(denied.value) == (
        'enhanced container isolation: docker command "/v1.43/images/myimage/push?tag=latest" '
        "is blocked; if you wish to allow it, configure the docker socket command list in the "
        "Docker admin settings."
    )


@pytest.mark.parametrize("line", ["GET /_ping", "HEAD /v1.43/_ping"])
@pytest.mark.parametrize("mode", ["deny", "allow"])
def test_ping_always_passes(line: str, mode: Mode) -> None:
    assert not blocked(line, mode)
    assert not blocked(line, mode, "system*", "ping", "ps")


@pytest.mark.parametrize("line", ["POST /containers/abc/checkpoints", "GET /nothing"])
def test_unknown_route_refused_in_allow_mode_only(line: str) -> None:
    assert req(line).route is None
    assert blocked(line, "allow", *KNOWN_ENTRIES)
    assert not blocked(line, "deny", *KNOWN_ENTRIES)


@pytest.mark.parametrize("entry", ["container", "ls", "ping", "*", "contain*"])
def test_entries_naming_nothing_cover_nothing(entry: str) -> None:
    assert entry not in KNOWN_ENTRIES
    for route in ROUTES:
        assert entry not in COMMANDS_BY_ROUTE[route.name]
    assert not blocked("POST /containers/create", "deny", entry)


def test_every_route_is_in_the_table_and_has_a_group() -> None:
    names = {route.name for route in ROUTES}
    assert set(COMMANDS_BY_ROUTE) == names
    assert all(group_of(name) for name in names)
    assert {r for routes in ROUTES_BY_COMMAND.values() for r in routes} <= names
    assert all(re.fullmatch(r"[a-z]+", command) for command in ROUTES_BY_COMMAND)


# --- the duality, over any request and any list --------------------------------------------

TEMPLATES = sorted({(r.method, r.template) for r in ROUTES})
PARAM = re.compile(r"\{[a-z]+\*?\}")
WORDS = st.text(alphabet="abcdefxyz0123456789._-:/", min_size=1, max_size=12)


@st.composite
def requests(draw: st.DrawFn) -> ApiRequest:
    if draw(st.booleans()):
        method, template = draw(st.sampled_from(TEMPLATES))
        path = PARAM.sub(lambda _: draw(WORDS).strip("/") or "x", template)
    else:
        method = draw(st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"]))
        path = "/" + draw(st.text(max_size=30))
    version = draw(st.sampled_from(["", "/v1.43", "/v1.24"]))
    query = draw(st.sampled_from(["", "?tag=latest", "?a=1&b=2"]))
    try:
        return parse_request(method, version + path + query)
    except BadTarget:
        return parse_request("GET", "/_ping")


ENTRIES = st.lists(
    st.one_of(
        st.sampled_from(sorted(KNOWN_ENTRIES)),
        st.sampled_from(sorted(KNOWN_ENTRIES)).map(str.upper),
        st.text(alphabet="abcimnopstuvz*", min_size=1, max_size=8),
    ),
    max_size=6,
).map(tuple)


@settings(max_examples=300, deadline=None)
@given(requests(), ENTRIES)
def test_deny_blocks_exactly_what_allow_permits(
    request: ApiRequest, entries: tuple[str, ...]
) -> None:
    line = f"{request.method} {request.target.raw}"
    ping = request.route_name == "system.ping"
    assert not blocked(line, "deny")
    assert blocked(line, "allow") is not ping
    if not ping:
        assert blocked(line, "deny", *entries) is not blocked(line, "allow", *entries)
