"""Policing stays apart from relaying: each module of the proxy imports only its side."""

from __future__ import annotations

import ast
from pathlib import Path

PROXY = Path(__file__).resolve().parents[3] / "src" / "eci" / "proxy"


def _imported_names(module: str) -> set[str]:
    """Every module and ``module.name`` imported by ``proxy/<module>.py``."""
    names: set[str] = set()
    for node in ast.walk(ast.parse((PROXY / f"{module}.py").read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_policing_knows_nothing_of_http_or_relaying() -> None:
    relay = {
        "h11",
        "eci.proxy.connection",
        "eci.proxy.framing",
        "eci.proxy.splice",
        "eci.proxy.streams",
    }
    assert _imported_names("policing") & relay == set()


def test_the_connection_reaches_the_policy_only_through_policing() -> None:
    deciding = {
        "eci.policy.decide",
        "eci.policy.facts_needed",
        "eci.policy.pin_target",
        "eci.policy.commands",
        "eci.proxy.identity",
        "eci.proxy.grants",
        "eci.proxy.upstream.gather_facts",
    }
    names = _imported_names("connection")
    assert "eci.proxy.policing.Policing" in names
    assert names & deciding == set()
