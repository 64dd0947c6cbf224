"""`parse_reference` normalizes image references the way the Docker CLI and dockerd read them.

Hypothesis invariant (test_any_text_*): for ANY text, `parse_reference` returns an `ImageRef`
whose string form parses back to itself, or raises `InvalidReference`; nothing else. The
generated text is kept short (20 characters): the registry pattern is exponential in the
length of a registry-like first component (test_registry_like_names_are_refused_in_linear_time),
and longer text would stall the run rather than fail it.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eci.dockerapi.imageref import ImageRef, InvalidReference, is_image_id, parse_reference

FUZZ = settings(max_examples=400, deadline=None)
HEX = "0123456789abcdef" * 4
DIGEST = f"sha256:{HEX}"

NORMALIZED = [
    ("busybox", "docker.io/library/busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36"),
    ("docker:cli", "docker.io/library/docker:cli"),
    ("library/busybox", "docker.io/library/busybox:latest"),
    ("docker.io/busybox", "docker.io/library/busybox:latest"),
    ("docker.io/library/busybox", "docker.io/library/busybox:latest"),
    ("index.docker.io/library/busybox:1", "docker.io/library/busybox:1"),
    ("registry-1.docker.io/x", "docker.io/library/x:latest"),
    ("localstack/localstack", "docker.io/localstack/localstack:latest"),
    ("testcontainers/ryuk:0.5.1", "docker.io/testcontainers/ryuk:0.5.1"),
    ("localhost/a", "localhost/a:latest"),
    ("localhost:5000/a/b:t", "localhost:5000/a/b:t"),
    ("localhost:5000/a", "localhost:5000/a:latest"),
    ("localhost:5000", "docker.io/library/localhost:5000"),  # name "localhost", tag "5000"
    ("Localhost/a", "Localhost/a:latest"),  # upper case: a registry, as the CLI reads it
    ("UPPER/a", "UPPER/a:latest"),
    ("myregistry.example/tools/ci-agent:v2", "myregistry.example/tools/ci-agent:v2"),
    ("[::1]:5000/a", "[::1]:5000/a:latest"),
    ("ghcr.io/a/b/c/d:e", "ghcr.io/a/b/c/d:e"),
    (f"busybox@{DIGEST}", f"docker.io/library/busybox@{DIGEST}"),
    (f"busybox:1.36@{DIGEST}", f"docker.io/library/busybox:1.36@{DIGEST}"),
    (
        f"myregistry.example/tools/ci-agent@{DIGEST}",
        f"myregistry.example/tools/ci-agent@{DIGEST}",
    ),
    (f"localhost:5000/a@{DIGEST}", f"localhost:5000/a@{DIGEST}"),
    ("foo_bar/baz", "docker.io/foo_bar/baz:latest"),
    ("a__b", "docker.io/library/a__b:latest"),
    ("a-b", "docker.io/library/a-b:latest"),
    ("a--b", "docker.io/library/a--b:latest"),
    ("a.b", "docker.io/library/a.b:latest"),
    ("a:Tag_1.x-y", "docker.io/library/a:Tag_1.x-y"),
]


@pytest.mark.parametrize(("text", "normal"), NORMALIZED, ids=[c[0] for c in NORMALIZED])
def test_references_normalize(text: str, normal: str) -> None:
    ref = parse_reference(text)
    assert str(ref) == normal
    assert parse_reference(str(ref)) == ref


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("busybox", ImageRef("docker.io", "library/busybox", "latest", None)),
        ("localhost:5000/a/b:t", ImageRef("localhost:5000", "a/b", "t", None)),
        (f"busybox@{DIGEST}", ImageRef("docker.io", "library/busybox", None, DIGEST)),
        (f"a:1@{DIGEST}", ImageRef("docker.io", "library/a", "1", DIGEST)),
    ],
    ids=["short", "registry-port", "digest", "tag-and-digest"],
)
def test_reference_parts(text: str, expected: ImageRef) -> None:
    ref = parse_reference(text)
    assert ref == expected
    assert ref.repository == f"{expected.domain}/{expected.path}"


def test_default_tag() -> None:
    assert parse_reference("busybox", default_tag=None).tag is None
    assert parse_reference("busybox", default_tag="*").tag == "*"
    assert parse_reference("busybox:1", default_tag=None).tag == "1"
    assert parse_reference(f"busybox@{DIGEST}").tag is None


INVALID = [
    ("", "empty or padded"),
    (" busybox", "empty or padded"),
    ("busybox ", "empty or padded"),
    ("busybox\n", "empty or padded"),
    ("Busybox", "not a valid repository name"),
    ("ghcr.io/A/b", "not a valid repository name"),
    ("busybox:", "invalid tag"),
    ("busybox:-x", "invalid tag"),
    ("busybox:.x", "invalid tag"),
    ("busybox:" + "x" * 129, "invalid tag"),
    ("busybox:a/b", "invalid registry"),
    ("a//b", "not a valid repository name"),
    ("a/b/", "not a valid repository name"),
    ("/a", "not a valid repository name"),
    ("a..b", "not a valid repository name"),
    ("a___b", "not a valid repository name"),
    ("_a", "not a valid repository name"),
    ("a-", "not a valid repository name"),
    ("a:b:c", "not a valid repository name"),
    ("host:port/a", "invalid registry"),
    ("example.com:x/a", "invalid registry"),
    ("-bad.example/a", "invalid registry"),
    (f"@{DIGEST}", "not a valid repository name"),
    ("busybox@sha256:abc", "invalid digest"),
    ("busybox@", "digest"),
    (f"busybox@{DIGEST}@{DIGEST}", "invalid digest"),
    ("busyb\u00f6x", "not a valid repository name"),
]


@pytest.mark.parametrize(("text", "why"), INVALID, ids=[repr(c[0]) for c in INVALID])
def test_invalid_references_are_refused(text: str, why: str) -> None:
    with pytest.raises(InvalidReference, match=why):
        parse_reference(text)


@pytest.mark.parametrize(
    ("text", "is_id"),
    [
        (HEX, True),
        (DIGEST, True),
        (HEX.upper(), False),
        (HEX[:-1], False),
        (HEX + "0", False),
        (f"sha512:{HEX}", False),
        ("busybox", False),
        (f"busybox@{DIGEST}", False),
        ("", False),
    ],
    ids=["hex", "sha256-hex", "upper", "short", "long", "sha512", "name", "digest-ref", "empty"],
)
def test_is_image_id(text: str, is_id: bool) -> None:
    assert is_image_id(text) is is_id


def test_a_bare_image_id_is_not_a_repository_name() -> None:
    """dockerd refuses a 64-hex repository name ("cannot specify 64-byte hexadecimal
    strings"); the module says an id is not a name."""
    with pytest.raises(InvalidReference):
        parse_reference(HEX)


@pytest.mark.parametrize(
    "text",
    ["A" * 40 + "_/x", "registry.example.com" + "a" * 40 + "!/x", "a" * 40 + ".example_/x"],
    ids=["upper-case", "dotted", "long-first-label"],
)
def test_registry_like_names_are_refused_in_linear_time(text: str) -> None:
    """An image name is attacker-controlled (``docker run <image>``); parsing it must not
    take exponential time. Run in a child process: a regular expression cannot be
    interrupted, and a stuck one must fail this test, not hang the suite."""
    code = (
        "from eci.dockerapi.imageref import InvalidReference, parse_reference\n"
        "try:\n"
        f"    parse_reference({text!r})\n"
        "except InvalidReference:\n"
        "    pass\n"
    )
    try:
        subprocess.run([sys.executable, "-c", code], check=True, timeout=5)
    except subprocess.TimeoutExpired:
        pytest.fail(f"parse_reference({text!r}) ran for more than 5 s")


# --- properties ---------------------------------------------------------------------------------

_PARTS = st.sampled_from(
    [
        "busybox",
        "library",
        "docker.io",
        "localhost",
        "localhost:5000",
        "Localhost",
        "a",
        "a_b",
        "a.b",
        "a-b",
        "[::1]",
        "/",
        "//",
        ":",
        "@",
        "sha256:",
        HEX,
        "latest",
        "1.36",
        ".",
        "..",
        "_",
        "-",
        " ",
        "\u00e9",
        "A",
    ]
)
near_references = st.lists(_PARTS, max_size=8).map("".join).filter(lambda t: len(t) <= 20)


def _holds(text: str) -> None:
    try:
        ref = parse_reference(text)
    except InvalidReference:
        return
    assert isinstance(ref, ImageRef)
    assert parse_reference(str(ref)) == ref
    assert ref.tag or ref.digest


@FUZZ
@given(st.text(max_size=20))
def test_any_text_parses_or_raises_invalid_reference(text: str) -> None:
    _holds(text)


@FUZZ
@given(near_references)
def test_near_references_parse_or_raise_invalid_reference(text: str) -> None:
    _holds(text)
