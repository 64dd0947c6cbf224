"""`match_route` over the whole route table, and through `parse_target` for every spelling.

The cases are generated from `ROUTES` itself (every route is reachable by its own template
filled with concrete parameters, in every spelling), plus hand-written tricky ones: image
names with slashes and registry ports, `/images/json` against `/images/{name}/json`, method
case, and paths that must not match.
"""

from __future__ import annotations

import re

import pytest

from eci.dockerapi.request import parse_request
from eci.dockerapi.routes import ROUTES, Body, Route, match_route
from eci.dockerapi.target import parse_target
from eci.policy.decide import FACTS, RULES

SINGLE = "3f4e5d6c7b8a"
MULTI = "localhost:5000/team/App"


def _fill(template: str, single: str = SINGLE, multi: str = MULTI) -> str:
    path = re.sub(r"\{[a-z]+\*\}", multi, template)
    return re.sub(r"\{[a-z]+\}", single, path)


def _params(route: Route, single: str = SINGLE, multi: str = MULTI) -> dict[str, str]:
    found = re.findall(r"\{([a-z]+)(\*?)\}", route.template)
    return {name: multi if star else single for name, star in found}


def _upper_static(template: str) -> str:
    """The template with its static parts upper-cased and its parameters left alone."""
    parts = re.split(r"(\{[a-z]+\*?\})", template)
    return "".join(p if p.startswith("{") else p.upper() for p in parts)


def _spellings(route: Route, multi: str) -> dict[str, str]:
    """The spellings a client may use for the route's path, all routed like the path itself."""
    path = _fill(route.template, multi=multi)
    return {
        "plain": path,
        "versioned": f"/v1.41{path}",
        "old-version": f"/v1.12{path}",
        "doubled-slashes": path.replace("/", "//"),
        "trailing-slash": f"{path}/",
        "dot-segments": f"/./x/..{path}",
        "escaped-slashes": path[:1] + path[1:].replace("/", "%2F"),
        "absolute-form": f"http://docker/v1.41{path}",
        "with-query": f"{path}?x=/../../containers/create",
        "upper-static": _fill(_upper_static(route.template), multi=multi),
    }


ROUTE_IDS = [f"{r.method} {r.template}" for r in ROUTES]


def test_route_table_is_well_formed() -> None:
    assert len(ROUTES) > 100
    keys = [(r.method, r.template) for r in ROUTES]
    assert len(keys) == len(set(keys)), "a (method, template) pair is listed twice"
    for route in ROUTES:
        assert route.method in {"GET", "HEAD", "POST", "PUT", "DELETE"}
        assert route.template.startswith("/")
        assert re.fullmatch(r"[a-z]+\.[a-z_]+", route.name)
    hijacked = {r.name for r in ROUTES if r.hijack}
    assert {"container.attach", "exec.start", "session.session", "session.grpc"} <= hijacked
    streamed = {r.name for r in ROUTES if r.body is Body.STREAM}
    assert streamed == {
        "container.archive_put",
        "image.create",
        "image.load",
        "build.build",
        "plugin.create",
    }


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
def test_every_route_is_reached_by_its_own_template(route: Route) -> None:
    match = match_route(route.method, _fill(route.template))
    assert match is not None
    assert match.route is route
    assert dict(match.params) == _params(route)


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
def test_every_spelling_of_a_route_reaches_it_with_the_same_params(route: Route) -> None:
    # a single-segment parameter cannot carry %2F-decoded slashes; use a plain one for both
    for how, target in _spellings(route, multi="team/App").items():
        request = parse_request(route.method, target)
        assert request.route is not None, how
        assert request.route.route is route, how
        assert dict(request.route.params) == _params(route, multi="team/App"), how


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
def test_lower_case_method_routes_like_upper_case(route: Route) -> None:
    match = match_route(route.method.lower(), _fill(route.template))
    assert match is not None
    assert match.route is route


TRICKY = [
    # (method, target, route name, params)
    ("GET", "/images/json", "image.list", {}),
    ("GET", "/v1.41/images/json?all=1", "image.list", {}),
    ("GET", "/images/busybox/json", "image.inspect", {"name": "busybox"}),
    ("GET", "/images/json/json", "image.inspect", {"name": "json"}),
    ("GET", "/images/search/json", "image.inspect", {"name": "search"}),
    ("GET", "/images/library/busybox/json", "image.inspect", {"name": "library/busybox"}),
    ("GET", "/images/library%2Fbusybox/json", "image.inspect", {"name": "library/busybox"}),
    (
        "GET",
        "/images/localhost:5000/a/b:t/json",
        "image.inspect",
        {"name": "localhost:5000/a/b:t"},
    ),
    (
        "GET",
        "/v1.41/images/localhost%3A5000%2Fa%2Fb%3At/json",
        "image.inspect",
        {"name": "localhost:5000/a/b:t"},
    ),
    (
        "GET",
        "/images/busybox@sha256:" + "a" * 64 + "/json",
        "image.inspect",
        {"name": "busybox@sha256:" + "a" * 64},
    ),
    ("GET", "/images/search?term=x", "image.search", {}),
    ("GET", "/images/get?names=a", "image.get_all", {}),
    ("GET", "/images/a/b/get", "image.get", {"name": "a/b"}),
    ("POST", "/images/localhost:5000/a/b/push?tag=t", "image.push", {"name": "localhost:5000/a/b"}),
    ("POST", "/images/a/b/push/tag", "image.tag", {"name": "a/b/push"}),
    ("POST", "/images/create?fromImage=a/b", "image.create", {}),
    ("DELETE", "/images/json", "image.delete", {"name": "json"}),
    ("DELETE", "/images/localhost:5000/a/b:t", "image.delete", {"name": "localhost:5000/a/b:t"}),
    (
        "GET",
        "/distribution/docker.io/library/busybox/json",
        "distribution.inspect",
        {"name": "docker.io/library/busybox"},
    ),
    ("POST", "/containers/create", "container.create", {}),
    ("POST", "/containers/create?name=create", "container.create", {}),
    ("POST", "/containers/Create", "container.create", {}),
    ("POST", "/containers/create/start", "container.start", {"id": "create"}),
    ("GET", "/containers/json", "container.list", {}),
    ("GET", "/containers/json/json", "container.inspect", {"id": "json"}),
    ("DELETE", "/containers/MyName", "container.delete", {"id": "MyName"}),
    ("POST", "/containers/a%20b/exec", "container.exec_create", {"id": "a b"}),
    ("POST", "/exec/e1/start", "exec.start", {"id": "e1"}),
    ("GET", "/networks/create", "network.inspect", {"id": "create"}),
    ("POST", "/networks/host/connect", "network.connect", {"id": "host"}),
    ("POST", "/networks/a/b/connect", "network.connect", {"id": "a/b"}),
    ("POST", "/networks/x/connect/connect", "network.connect", {"id": "x/connect"}),
    ("GET", "/volumes/my/vol", "volume.inspect", {"name": "my/vol"}),
    ("POST", "/volumes/create", "volume.create", {}),
    ("POST", "/plugins/pull?remote=x", "plugin.pull", {}),
    ("POST", "/plugins/vieux/sshfs:latest/enable", "plugin.enable", {"name": "vieux/sshfs:latest"}),
    ("POST", "/plugins/x/enable/set", "plugin.set", {"name": "x/enable"}),
    ("POST", "/build?version=2", "build.build", {}),
    ("POST", "/build/prune", "build.prune", {}),
    ("POST", "/session", "session.session", {}),
    ("POST", "/grpc", "session.grpc", {}),
    ("HEAD", "/_ping", "system.ping", {}),
    ("GET", "/_ping", "system.ping", {}),
    ("POST", "/services/create", "service.create", {}),
    ("POST", "/services/s1/update", "service.update", {"id": "s1"}),
]


@pytest.mark.parametrize(
    ("method", "target", "name", "params"), TRICKY, ids=[f"{c[0]} {c[1]}" for c in TRICKY]
)
def test_tricky_targets_route_where_dockerd_would(
    method: str, target: str, name: str, params: dict[str, str]
) -> None:
    request = parse_request(method, target)
    assert request.route_name == name
    assert request.route is not None
    assert dict(request.route.params) == params
    for key, value in params.items():
        assert request.param(key) == value


NO_ROUTE = [
    ("GET", "/containers/a/b/json"),  # {id} is one segment
    ("DELETE", "/containers/a/b"),
    ("POST", "/containers/create/x"),
    ("POST", "/containers"),
    ("GET", "/images"),
    ("GET", "/images/"),  # normalized to /images
    ("POST", "/images/push"),  # {name*} needs at least one character before /push
    ("PATCH", "/containers/create"),
    ("POST", "/containers/json"),
    ("GET", "/containers/create"),
    ("POST", "/containers/create#frag"),
    ("POST", "/v1.41/v1.40/containers/create"),
    ("POST", "/containers/create%3Fx=1"),
    ("GET", "/"),
    ("POST", "/"),
    ("PUT", "/volumes"),
]


@pytest.mark.parametrize(("method", "target"), NO_ROUTE, ids=[f"{m} {t}" for m, t in NO_ROUTE])
def test_paths_outside_the_table_match_no_route(method: str, target: str) -> None:
    assert match_route(method, parse_target(target).path) is None


def test_first_match_in_table_order_wins() -> None:
    """``GET /images/json`` is the list, never ``inspect`` of an image named ``json``; the
    list route is listed before the pattern that could also match it."""
    names = [r.name for r in ROUTES]
    assert names.index("image.list") < names.index("image.inspect")
    assert names.index("container.create") < names.index("container.start")
    match = match_route("GET", "/images/json")
    assert match is not None
    assert match.name == "image.list"


def test_route_names_are_stable_for_the_policy() -> None:
    names = {r.name for r in ROUTES}
    assert set(RULES) <= names
    assert set(FACTS) <= names
