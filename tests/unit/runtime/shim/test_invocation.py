"""runc command lines as dockerd 20.10 / containerd 1.6 send them to the shim."""

from __future__ import annotations

import pytest

from eci.runtime.shim.invocation import MAX_CONTAINER_ID, parse, valid_container_id

BUNDLE = "/run/eci/private/containerd/io.containerd.runtime.v2.task/eci/abc"
CREATE = [
    "--eci-state",
    "/var/lib/eci",
    "--root",
    "/run/eci/private/exec/runtime-sysbox-runc/x",
    "--log",
    f"{BUNDLE}/log.json",
    "--log-format",
    "json",
    "create",
    "--bundle",
    BUNDLE,
    "--pid-file",
    f"{BUNDLE}/init.pid",
    "abc",
]


def test_create_as_containerd_sends_it() -> None:
    inv = parse(CREATE)
    assert inv.command == "create"
    assert inv.eci_state == "/var/lib/eci"
    assert inv.container_id == "abc"
    assert inv.bundle == BUNDLE
    assert inv.root == "/run/eci/private/exec/runtime-sysbox-runc/x"
    assert inv.log == f"{BUNDLE}/log.json"
    assert inv.globals["--log-format"] == "json"
    assert "--eci-state" not in inv.backend_argv
    assert "/var/lib/eci" not in inv.backend_argv
    assert list(inv.backend_argv) == CREATE[2:]


@pytest.mark.parametrize(
    ("argv", "command", "container", "state"),
    [
        (["--eci-state=/s", "--root", "/r", "delete", "--force", "abc"], "delete", "abc", "/s"),
        (["--root=/r", "--debug", "start", "abc"], "start", "abc", None),
        (["features"], "features", None, None),
        (["--eci-state", "/s", "create", "-b", "/b", "id1"], "create", "id1", "/s"),
        ([], "", None, None),
    ],
    ids=["delete-force", "start", "features", "short-bundle-flag", "empty"],
)
def test_command_and_container(
    argv: list[str], command: str, container: str | None, state: str | None
) -> None:
    inv = parse(argv)
    assert (inv.command, inv.container_id, inv.eci_state) == (command, container, state)
    assert not any(a.startswith("--eci-state") for a in inv.backend_argv)


def test_defaults_when_flags_are_absent() -> None:
    inv = parse(["create", "abc"])
    assert inv.bundle == "."
    assert inv.root == "/run/runc"
    assert inv.log is None


@pytest.mark.parametrize(
    ("argv", "root", "bundle"),
    [
        (["-root", "/r", "create", "--bundle", "/B", "id"], "/r", "/B"),
        (["--root=/r", "create", "-b=/B", "id"], "/r", "/B"),
        (["create", "-bundle", "/B", "id"], "/run/runc", "/B"),
        (["create", "--bundle", "/A", "-b", "/B", "id"], "/run/runc", "/B"),
    ],
    ids=["go-style-global", "equals-forms", "go-style-bundle", "last-wins"],
)
def test_flags_are_read_the_way_runc_reads_them(argv: list[str], root: str, bundle: str) -> None:
    inv = parse(argv)
    assert (inv.command, inv.root, inv.bundle, inv.container_id) == ("create", root, bundle, "id")


def test_unknown_create_flag_is_refused_not_guessed() -> None:
    with pytest.raises(ValueError, match="unknown create flag '--surprise'"):
        parse(["create", "--surprise", "x", "id"])


def test_pidfd_socket_takes_a_value() -> None:
    assert parse(["create", "--pidfd-socket", "/s", "id"]).container_id == "id"


@pytest.mark.parametrize(
    "cid",
    ["abc", "a" * 64, "0123abcdef", "A.b_c-d", "x1.2", "a" * MAX_CONTAINER_ID],
    ids=["word", "docker-id", "hex", "punctuation", "dot-inside", "longest"],
)
def test_a_container_id_of_letters_digits_and_punctuation_is_valid(cid: str) -> None:
    assert valid_container_id(cid)


@pytest.mark.parametrize(
    "cid",
    [
        "",
        ".",
        "..",
        "a..b",
        "ab..",
        "../etc",
        "a/b",
        "/abc",
        "abc/",
        "-rf",
        "_a",
        ".hidden",
        "a b",
        "a\0b",
        "a\nb",
        "\u00e9t\u00e9",
        "a\u0663",
        "a+b",
        "a:b",
        "a" * (MAX_CONTAINER_ID + 1),
    ],
    ids=[
        "empty",
        "dot",
        "dotdot",
        "inner-dotdot",
        "trailing-dotdot",
        "parent-path",
        "slash",
        "absolute",
        "trailing-slash",
        "flag",
        "underscore-first",
        "dot-first",
        "space",
        "nul",
        "newline",
        "non-ascii-letters",
        "non-ascii-digit",
        "plus",
        "colon",
        "too-long",
    ],
)
def test_a_container_id_that_could_name_another_path_is_invalid(cid: str) -> None:
    """Rejected by the shim and the mount supervisor alike (one rule): runc would refuse most
    of these itself, and '..' anywhere is refused although runc allows 'a..b'."""
    assert not valid_container_id(cid)
