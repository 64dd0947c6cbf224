"""A classic build's remote context: its host read as dockerd reads it, refused when it
resolves to the host itself (loopback, link-local, unspecified, an address of the host)."""

from __future__ import annotations

import dataclasses
from urllib.parse import quote

import pytest
from tests.unit.policy.cases import FACTS, ON, request

from eci.policy import Allow, Deny, decide, facts_needed
from eci.policy.remote import UnreadableRemote, remote_host

HOST_OWN = "192.0.2.7"
RESOLVED = dataclasses.replace(
    FACTS,
    addresses={
        "localhost": ("127.0.0.1", "::1"),
        "127.1": ("127.0.0.1",),
        "example.org": ("93.184.215.14",),
        "rebound.example": ("93.184.215.14", "127.0.0.1"),
        "github.com": ("140.82.121.3",),
        "metadata": ("169.254.169.254",),
        "mapped": ("::ffff:127.0.0.1",),
        "v6ll": ("fe80::1%eth0",),
        "any": ("0.0.0.0",),
        "me": (HOST_OWN,),
    },
    local_addresses=frozenset({HOST_OWN, "10.0.0.1"}),
)


def _build(*remotes: str) -> object:
    query = "&".join(f"remote={quote(r, safe='')}" for r in remotes)
    return request("POST", f"/v1.41/build?{query}&t=x", b"", "application/x-tar")


@pytest.mark.parametrize(
    ("remote", "host"),
    [
        ("http://localhost:5000/c.tar", "localhost"),
        ("https://user:pw@Example.org/c.tar", "example.org"),
        ("http://[::1]:80/c.tar", "::1"),
        ("git://127.1/repo.git#main:dir", "127.1"),
        ("git@github.com:moby/moby.git", "github.com"),
        ("git@localhost/repo.git", "localhost"),
        ("github.com/moby/moby", "github.com"),
        ("http://evil.example@127.0.0.1/", "127.0.0.1"),
        ("context", None),
        ("client-session", None),
        ("ftp://127.0.0.1/x", None),  # dockerd does not fetch it
        ("HTTP://127.0.0.1/x", None),  # (its prefixes are case-sensitive)
    ],
)
def test_the_host_is_read_as_dockerd_reads_the_remote(remote: str, host: str | None) -> None:
    assert remote_host(remote) == host


@pytest.mark.parametrize(
    "remote", ["http://%31%32%37.0.0.1/x", "http://a b/x", "http://[fe80::1%25eth0]/x", "git@:x"]
)
def test_a_host_that_cannot_be_read_is_refused(remote: str) -> None:
    with pytest.raises(UnreadableRemote):
        remote_host(remote)
    decision = decide(_build(remote), ON, RESOLVED)
    assert isinstance(decision, Deny)
    assert decision.rule == "build-remote"


@pytest.mark.parametrize(
    ("remote", "reason"),
    [
        ("http://localhost:5000/c.tar", "127.0.0.1 is a loopback address of the host"),
        ("http://127.1/c.tar", "127.0.0.1 is a loopback address of the host"),
        ("http://rebound.example/c.tar", "127.0.0.1 is a loopback address of the host"),
        ("http://metadata/latest", "169.254.169.254 is a link-local address"),
        ("http://mapped/c.tar", "127.0.0.1 is a loopback address of the host"),
        ("http://v6ll/c.tar", "fe80::1 is a link-local address"),
        ("http://any/c.tar", "0.0.0.0 reaches the host itself"),
        ("http://me/c.tar", f"{HOST_OWN} is an address of the host"),
        ("git@localhost:repo.git", "loopback"),
        ("http://nowhere.invalid/c.tar", "does not resolve"),
    ],
)
def test_a_remote_on_the_host_is_refused(remote: str, reason: str) -> None:
    decision = decide(_build(remote), ON, RESOLVED)
    assert isinstance(decision, Deny)
    assert decision.rule == "build-remote"
    assert reason in decision.message
    assert repr(remote) in decision.message


@pytest.mark.parametrize(
    "remotes",
    [(), ("https://example.org/c.tar",), ("github.com/moby/moby",), ("context",)],
)
def test_other_remotes_pass(remotes: tuple[str, ...]) -> None:
    assert decide(_build(*remotes), ON, RESOLVED) == Allow()


def test_every_remote_is_checked_not_only_the_first() -> None:
    decision = decide(_build("https://example.org/c.tar", "http://localhost/x"), ON, RESOLVED)
    assert isinstance(decision, Deny)


def test_the_hosts_are_asked_for() -> None:
    query = facts_needed(_build("http://localhost/x", "git@github.com:a/b", "context"), ON)
    assert query.hosts == {"localhost", "github.com"}
