"""The requester label: set by the proxy on every create it forwards for a non-root user,
never chosen by the client, read back by the runtime with root and junk ignored."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.unit.policy.cases import FACTS, ON, create, forwarded

from eci.contract.labels import REQUESTER_LABEL
from eci.contract.requester import parse_requester
from eci.policy import Deny, decide

ALICE = dataclasses.replace(FACTS, requester=(1000, 1000))


def test_a_users_create_is_labelled_with_who_asked() -> None:
    body = {"Image": "busybox", "HostConfig": {}, "Labels": {"app": "x"}}
    sent = forwarded(create(body), decide(create(body), ON, ALICE))
    assert sent["Labels"] == {"app": "x", REQUESTER_LABEL: "1000:1000"}
    assert sent["HostConfig"]["Runtime"] == "sysbox-runc"


def test_without_a_known_requester_there_is_no_label() -> None:
    body = {"Image": "busybox"}
    assert "Labels" not in forwarded(create(body), decide(create(body), ON, FACTS))


@pytest.mark.parametrize("requester", [(0, 0), (0, 1000)], ids=["root", "root-uid"])
def test_root_s_label_names_no_one(requester: tuple[int, int]) -> None:
    """Root's creates are labelled too, so an image's own label never speaks for them."""
    facts = dataclasses.replace(FACTS, requester=requester)
    body = {"Image": "busybox"}
    label = forwarded(create(body), decide(create(body), ON, facts))["Labels"][REQUESTER_LABEL]
    assert label == f"0:{requester[1]}"
    assert parse_requester(label) is None


@pytest.mark.parametrize("spelling", [REQUESTER_LABEL, "io.eci.requester"])
def test_a_client_cannot_name_the_requester(spelling: str) -> None:
    body = {"Image": "busybox", "labels": {spelling: "0:0"}}  # Go: any key spelling of Labels
    for facts in (ALICE, FACTS):
        decision = decide(create(body), ON, facts)
        assert isinstance(decision, Deny)
        assert decision.rule == "reserved-label"
        assert REQUESTER_LABEL in decision.message


@pytest.mark.parametrize(
    ("value", "ids"),
    [
        ("1000:1000", (1000, 1000)),
        ("1000:50", (1000, 50)),
        ("0:0", None),
        ("1000:0", None),
        ("0:1000", None),
        ("1000", None),
        ("a:b", None),
        ("-1:5", None),
        ("1000:1000:1", None),
        ("4294967295:1", None),
        ("١٢:1", None),
    ],
)
def test_the_runtime_reads_only_plain_non_root_ids(value: str, ids: tuple[int, int] | None) -> None:
    assert parse_requester(value) == ids


@given(st.text(max_size=30))
def test_parse_requester_never_raises_and_never_gives_root(value: str) -> None:
    ids = parse_requester(value)
    assert ids is None or (0 not in ids and f"{ids[0]}:{ids[1]}" == value)
