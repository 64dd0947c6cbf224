"""Property tests: the policy answers every request, and never lets a host PID namespace by.

Invariant 1 ("0 policy exceptions escaping as 500"): for ANY method, request target, body and
content type, `parse_request` either raises `BadTarget` (the proxy answers 400) or gives a
request for which `decide` returns `Allow`, `Deny` with a 4xx status, or `Rewrite` with a body
dockerd can decode (strict JSON: UTF-8, no NaN/Infinity), with ECI on or off, with or without
engine facts; with ECI off it is always `Allow`. `facts_needed` likewise always returns a
`FactsQuery` of strings (empty with ECI off) and never raises.

Invariant 2: a container-create body that asks for `PidMode: "host"` — under any case variant
of the keys `HostConfig` / `PidMode` (Go's non-ASCII folds included), inside HostConfig or at
the top level, among any other fields — is never allowed or rewritten.

The explicit tests below the properties pin the inputs that once escaped (lone surrogates,
numbers beyond float range, nesting deep enough for `copy.deepcopy` but not for the JSON
scanner, an image name that makes the reference regex exponential).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.unit.gostrategies import go_spellings, json_documents
from tests.unit.policy.cases import FACTS, OFF, ON, create, request

from eci.dockerapi.request import ApiRequest, parse_request
from eci.dockerapi.routes import ROUTES
from eci.dockerapi.target import BadTarget
from eci.policy import Allow, Deny, Facts, FactsQuery, Rewrite, decide, facts_needed

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _strict(body: bytes) -> Any:
    """Decode like dockerd: UTF-8 only, no NaN/Infinity (Python's json would take both)."""

    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    return json.loads(body.decode("utf-8"), parse_constant=refuse)


def _holds(req: ApiRequest) -> None:
    for facts in (FACTS, None):
        decision = decide(req, ON, facts)
        assert isinstance(decision, Allow | Deny | Rewrite)
        if isinstance(decision, Deny):
            assert 400 <= decision.status < 500
            assert decision.rule
            assert decision.message
        if isinstance(decision, Rewrite):
            _strict(decision.body)
        assert decide(req, OFF, facts) == Allow()
    query = facts_needed(req, ON)
    assert isinstance(query, FactsQuery)
    for names in (query.containers, query.volumes, query.networks, query.paths):
        assert all(isinstance(n, str) for n in names)
    assert facts_needed(req, OFF) == FactsQuery()


def _outcome(method: str, target: bytes | str, body: bytes, content_type: str | None) -> None:
    try:
        req = parse_request(method, target, body, content_type)
    except BadTarget:
        return
    _holds(req)


# --- strategies ---------------------------------------------------------------------------------


_variant = go_spellings


FIELDS = [
    "Image",
    "HostConfig",
    "PidMode",
    "IpcMode",
    "UTSMode",
    "NetworkMode",
    "UsernsMode",
    "Binds",
    "Mounts",
    "Volumes",
    "VolumesFrom",
    "Runtime",
    "Privileged",
    "Labels",
    "Type",
    "Source",
    "Target",
    "VolumeOptions",
    "DriverConfig",
    "Options",
    "DriverOpts",
    "Driver",
    "NetworkingConfig",
    "EndpointsConfig",
    "Devices",
    "CgroupParent",
    "TaskTemplate",
    "ContainerSpec",
    "Networks",
    "PluginSpec",
    "Resource",
    "Name",
    "Cmd",
]
VALUES = [
    "host",
    "HOST",
    "container:runc-c",
    "container:eci-c",
    "container:",
    "hostnet",
    "bridge",
    "/etc/docker:/x",
    "/run/docker.sock:/s",
    "/var/run/../run/docker.sock:/s",
    "devvol:/x",
    "/home/u/x:/x",
    "/",
    "bind",
    "volume",
    "tmpfs",
    "none",
    "local",
    "/etc/docker",
    "overlay",
    "lowerdir=/etc",
    "etc/docker",
    "binder",
    "runc",
    "sysbox-runc",
    "plugin",
    "docker:cli",
    "busybox",
    "sha256:" + "a" * 64,
    "",
    "\x00",
    "\u00e9",
    "\U0001f600",
]
keys = (
    st.sampled_from(FIELDS).flatmap(_variant)
    | st.sampled_from(["device", "o", "type"])
    | st.text(max_size=4)
)
documents = json_documents(keys, VALUES, max_leaves=30)
_RAW_TOKENS = st.sampled_from(
    [
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        '"',
        '"HostConfig"',
        '"PidMode"',
        '"host"',
        '"Binds"',
        '["/etc/docker:/x"]',
        '"\\ud800"',
        '"\\udfff"',
        "1e999",
        "-1e999",
        "NaN",
        "Infinity",
        "null",
        "true",
        "0",
        " ",
        '"Image"',
        '"busybox"',
        '"Runtime"',
        '"runc"',
    ]
)
raw_bodies = st.lists(_RAW_TOKENS, max_size=25).map(lambda t: "".join(t).encode("utf-8"))
deep_bodies = st.integers(1, 1200).map(
    lambda d: b'{"Image": "busybox", "Env": ' + b"[" * d + b"]" * d + b"}"
)
bodies = (
    documents.map(lambda d: json.dumps(d).encode())
    | documents.map(lambda d: json.dumps(d, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    | raw_bodies
    | deep_bodies
    | st.binary(max_size=64)
    | st.sampled_from([b"", b"{}", b"null", b"[]", b" {} "])
)

PARAMS = ["runc-c", "eci-c", "binder", "host", "hostnet", "x", "a/b", "a%2Fb", "localhost:5000/a:t"]
QUERIES = ["", "?networkmode=host", "?version=2", "?path=/cfg", "?path=/", "?a=%ff", "?x=/../"]


@st.composite
def route_targets(draw: st.DrawFn) -> tuple[str, str]:
    route = draw(st.sampled_from(ROUTES))
    path = route.template
    for name in ("{id}", "{name}", "{id*}", "{name*}"):
        if name in path:
            path = path.replace(name, draw(st.sampled_from(PARAMS)))
    version = draw(st.sampled_from(["", "/v1.41", "/v1.12", "/V1.99"]))
    method = draw(st.sampled_from([route.method, route.method.lower(), "POST", "GET"]))
    return method, version + path + draw(st.sampled_from(QUERIES))


methods = st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "post"])
content_types = st.sampled_from(
    [None, "application/json", "application/x-www-form-urlencoded", "text/plain", "", "a/b; c"]
)
any_targets = st.text(max_size=40) | st.binary(max_size=40)


# --- invariant 1 --------------------------------------------------------------------------------


@FUZZ
@given(route_targets(), bodies, content_types)
def test_decide_answers_every_request_on_known_routes(
    method_target: tuple[str, str], body: bytes, content_type: str | None
) -> None:
    method, target = method_target
    _outcome(method, target, body, content_type)


@FUZZ
@given(methods | st.text(min_size=1, max_size=8), any_targets, bodies, content_types)
def test_decide_answers_every_request_on_any_target(
    method: str, target: bytes | str, body: bytes, content_type: str | None
) -> None:
    _outcome(method, target, body, content_type)


@FUZZ
@given(bodies)
def test_decide_answers_every_container_create_body(body: bytes) -> None:
    _outcome("POST", "/v1.41/containers/create", body, "application/json")


# --- invariant 2 --------------------------------------------------------------------------------

other_fields = st.dictionaries(
    st.sampled_from([f for f in FIELDS if f not in ("HostConfig", "PidMode")]),
    st.none() | st.booleans() | st.text(max_size=10) | st.sampled_from(VALUES),
    max_size=4,
)


@st.composite
def pid_host_bodies(draw: st.DrawFn) -> dict[str, Any]:
    pid = {draw(_variant("PidMode")): draw(_variant("host", folds=False))}
    where = draw(st.sampled_from(["inner", "top", "top-beside-inner", "both"]))
    body: dict[str, Any] = {"Image": draw(st.sampled_from(["busybox", "docker:cli", ""]))}
    body.update(draw(other_fields))
    inner: dict[str, Any] = dict(draw(other_fields))
    if where in ("top", "top-beside-inner", "both"):
        body.update(pid)
    if where in ("inner", "both"):
        inner.update(pid)
    if where != "top":
        body[draw(_variant("HostConfig"))] = inner
    return body


@FUZZ
@given(pid_host_bodies())
def test_a_host_pid_namespace_is_never_allowed(body: dict[str, Any]) -> None:
    req = create(json.dumps(body).encode())
    for facts in (FACTS, None):
        decision = decide(req, ON, facts)
        assert isinstance(decision, Deny), (body, decision)


# --- inputs that once escaped ---------------------------------------------------------------------

SURROGATES = [
    ("POST", "/containers/create", b'{"Image": "busybox", "Labels": {"a": "\\ud800"}}'),
    ("POST", "/containers/create", b'{"Image": "busybox", "Env": ["X=\\udc00"]}'),
    ("POST", "/containers/create", b'{"Image": "busybox", "\\ud83d": 1}'),
    ("POST", "/containers/eci-c/update", b'{"Memory": 1, "x": "\\ud800"}'),
    ("POST", "/containers/eci-c/exec", b'{"Cmd": ["\\ud800"]}'),
    ("POST", "/volumes/create", b'{"Name": "\\ud800"}'),
    ("POST", "/services/create", b'{"Name": "\\ud800"}'),
]


@pytest.mark.parametrize(
    ("method", "target", "body"),
    SURROGATES,
    ids=[f"{t}-{i}" for i, (_, t, _) in enumerate(SURROGATES)],
)
def test_lone_surrogate_escapes_are_answered(method: str, target: str, body: bytes) -> None:
    """Go reads a lone ``\\ud800`` as U+FFFD; here it must not make re-encoding the body for
    dockerd raise ``UnicodeEncodeError`` out of ``decide``."""
    _holds(request(method, target, body))


@pytest.mark.parametrize("depth", [200, 400, 600, 800, 950, 990, 1100, 5000], ids=str)
@pytest.mark.parametrize(
    "target", ["/containers/create", "/containers/eci-c/update", "/volumes/create"]
)
def test_any_nesting_depth_is_answered(target: str, depth: int) -> None:
    body = (
        b'{"Image": "busybox", "Labels": {"a": "b"}, "Env": ' + b"[" * depth + b"]" * depth + b"}"
    )
    _holds(request("POST", target, body))


@pytest.mark.parametrize(
    "body",
    [
        b'{"Image": "busybox", "HostConfig": {"CpuShares": 1e999}}',
        b'{"Image": "busybox", "StopTimeout": -1e400}',
    ],
    ids=["inf", "minus-inf"],
)
def test_numbers_beyond_float_range_are_not_forwarded_as_infinity(body: bytes) -> None:
    decision = decide(create(body), ON, FACTS)
    if isinstance(decision, Rewrite):
        _strict(decision.body)
    else:
        assert isinstance(decision, Deny)


def test_an_exponential_image_name_does_not_stall_the_policy() -> None:
    """The policy runs inside the proxy's event loop: one create request whose image name
    makes the reference pattern backtrack exponentially would stall every client. Run in a
    child process: a stuck regular expression cannot be interrupted."""
    code = (
        "from eci.policy import PolicyContext, decide\n"
        "from eci.dockerapi.request import parse_request\n"
        'body = b\'{"Image": "\' + b\'A\' * 40 + b\'_/x", "HostConfig": {"Binds": '
        '["/run/docker.sock:/s"]}}\'\n'
        "decide(parse_request('POST', '/containers/create', body), PolicyContext(True))\n"
    )
    try:
        subprocess.run([sys.executable, "-c", code], check=True, timeout=5)
    except subprocess.TimeoutExpired:
        pytest.fail("decide() on a create with a 43-character image name ran for over 5 s")


def test_facts_of_the_fixture_are_consistent() -> None:
    assert isinstance(FACTS, Facts)
    assert FACTS.containers["missing"] is None
