"""The rule tables name real routes, and every route with a rule reaches it."""

from __future__ import annotations

import dataclasses
import re

import pytest
from tests.unit.policy.cases import ON, request

from eci.dockerapi.request import ApiRequest
from eci.dockerapi.routes import ROUTES
from eci.policy import Decision, Deny, Facts, PolicyContext, decide
from eci.policy.decide import FACTS as FACT_RULES
from eci.policy.decide import REENCODED, RULES, check_route_names, facts_needed
from eci.policy.facts import FactsQuery


def _requests_for(name: str) -> list[tuple[str, str]]:
    """(method, target) of every route called ``name``, its parameters filled in."""
    found = [
        (route.method, "/v1.41" + re.sub(r"\{[a-z]+\*?\}", "x", route.template))
        for route in ROUTES
        if route.name == name
    ]
    assert found, f"no route is called {name!r}"
    return found


@pytest.mark.parametrize("name", sorted(RULES))
def test_every_rule_is_reached_by_its_routes(name: str) -> None:
    reached: list[str | None] = []

    def probe(req: ApiRequest, ctx: PolicyContext, facts: Facts) -> Decision:
        reached.append(req.route_name)
        return Deny("probe", "probed")

    ctx = dataclasses.replace(ON, container_ownership=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(RULES, name, probe)
        for method, target in _requests_for(name):
            assert decide(request(method, target, b"{}"), ctx, Facts()) == Deny("probe", "probed")
    assert reached == [name] * len(_requests_for(name))


@pytest.mark.parametrize("name", sorted(FACT_RULES))
def test_every_facts_rule_is_reached_by_its_routes(name: str) -> None:
    called: list[str] = []

    def probe(req: ApiRequest) -> FactsQuery:
        called.append(name)
        return FactsQuery()

    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(FACT_RULES, name, probe)
        for method, target in _requests_for(name):
            facts_needed(request(method, target, b"{}"), ON)
    assert called == [name] * len(_requests_for(name))


@pytest.mark.parametrize("name", sorted(REENCODED))
def test_every_reencoded_route_exists(name: str) -> None:
    assert _requests_for(name)


@pytest.mark.parametrize("table", ["RULES", "FACTS", "REENCODED"])
def test_a_misspelled_route_name_stops_the_policy_loading(table: str) -> None:
    with pytest.raises(LookupError, match=r"container\.creat'"):
        check_route_names({table: ["container.create", "container.creat"]})
