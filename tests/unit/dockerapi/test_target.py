"""`parse_target`: every spelling of a request target lands on the path dockerd would route.

Hypothesis invariant (test_any_bytes_*, test_any_text_*): for ANY request target, bytes or
text, `parse_target` returns an `ApiTarget` whose path is absolute and normalized (no `//`, no
`.`/`..` segment, no trailing slash, no version prefix) or raises `BadTarget`; it never raises
anything else. A second property: a normalized path is a fixed point (parsing it again gives
the same path and no version).
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eci.dockerapi.target import ApiTarget, BadTarget, normalize_path, parse_target

FUZZ = settings(max_examples=400, deadline=None)


NORMALIZED = [
    # (target, path, version)
    ("/containers/json", "/containers/json", None),
    ("/v1.41/containers/json", "/containers/json", "1.41"),
    ("/v1.12/containers/json", "/containers/json", "1.12"),
    ("/v1.99/info", "/info", "1.99"),
    ("/v1/info", "/info", "1"),
    ("/V1.41/info", "/info", "1.41"),
    ("/v1.41", "/", "1.41"),
    ("/v1.41/", "/", "1.41"),
    ("/", "/", None),
    ("/containers//json", "/containers/json", None),
    ("//v1.41//containers///json", "/containers/json", "1.41"),
    ("/containers/json/", "/containers/json", None),
    ("/v1.41/containers/create/", "/containers/create", "1.41"),
    ("/containers/./json", "/containers/json", None),
    ("/containers/x/../json", "/containers/json", None),
    ("/v1.41/../containers/create", "/containers/create", None),
    ("/v1.41/../v1.40/info", "/info", "1.40"),
    ("/..", "/", None),
    ("/../../../containers/create", "/containers/create", None),
    ("/v1.41/images/a%2Fb/json", "/images/a/b/json", "1.41"),
    ("/v1.41/images/a%2fb/json", "/images/a/b/json", "1.41"),
    ("/images/%2e%2e/containers/create", "/containers/create", None),
    ("/containers%2Fcreate", "/containers/create", None),
    ("/%761.41/info", "/info", "1.41"),
    ("/CONTAINERS/JSON", "/CONTAINERS/JSON", None),
    ("/images/MyImage/json", "/images/MyImage/json", None),
    ("/v1x/info", "/v1x/info", None),
    ("/v/info", "/v/info", None),
    ("/v1.41/v1.40/info", "/v1.40/info", "1.41"),
    ("/%C3%A9", "/\u00e9", None),
    ("http://x/v1.41/info", "/info", "1.41"),
    ("HTTP://docker:2375/v1.41/containers/create", "/containers/create", "1.41"),
    ("http://x//containers//create/", "/containers/create", None),
    ("unix://%2Fvar%2Frun%2Fdocker.sock/v1.41/_ping", "/_ping", "1.41"),
    ("/info?x=/../../containers/create", "/info", None),
    ("/_ping?/containers/create", "/_ping", None),
]


@pytest.mark.parametrize(("target", "path", "version"), NORMALIZED, ids=[c[0] for c in NORMALIZED])
def test_targets_normalize_to_the_path_dockerd_routes(
    target: str, path: str, version: str | None
) -> None:
    for raw in (target, target.encode("utf-8")):
        parsed = parse_target(raw)
        assert (parsed.path, parsed.version) == (path, version)
        assert parsed.raw == target


QUERIES = [
    ("/containers/json", {}),
    ("/containers/json?", {}),
    ("/containers/json?all=1", {"all": ("1",)}),
    (
        "/images/create?fromImage=busybox&tag=latest",
        {"fromImage": ("busybox",), "tag": ("latest",)},
    ),
    ("/x?a=1&a=2&b", {"a": ("1", "2"), "b": ("",)}),
    ("/x?a=1&&b=2&", {"a": ("1",), "b": ("2",)}),
    ("/x?a+b=c+d", {"a b": ("c d",)}),
    ("/x?k=%2F..%2Fcontainers%2Fcreate", {"k": ("/../containers/create",)}),
    ("/x?k=a=b", {"k": ("a=b",)}),
    ("/x?q=%C3%A9", {"q": ("\u00e9",)}),
    (
        "/build?networkmode=host&NetworkMode=bridge",
        {"networkmode": ("host",), "NetworkMode": ("bridge",)},
    ),
]


@pytest.mark.parametrize(("target", "query"), QUERIES, ids=[c[0] for c in QUERIES])
def test_query_keeps_every_value_of_every_key_in_order(
    target: str, query: dict[str, tuple[str, ...]]
) -> None:
    assert dict(parse_target(target).query) == query


def test_query_lookup() -> None:
    target = parse_target("/build?networkmode=host&NetworkMode=bridge&NETWORKMODE=none&t=x")
    assert target.query_values("networkmode") == ("host", "bridge", "none")
    assert target.query_values("NetworkMode") == ("host", "bridge", "none")
    assert target.query_first("networkmode") == "host"
    assert target.query_first("NetworkMode") == "bridge"
    assert target.query_first("absent") is None
    assert target.query_values("absent") == ()


BAD = [
    ("", "no absolute path"),
    ("*", "no absolute path"),
    ("containers/json", "no absolute path"),
    ("http://x", "no absolute path"),
    ("http://x?a=/containers/create", "no absolute path"),
    ("/a%00b", "NUL"),
    ("/v1.41/containers/create%00", "NUL"),
    ("/a\x00b", "NUL"),
    ("/%ff", "UTF-8"),
    ("/%C3", "UTF-8"),
    ("/x?q=%ff", "UTF-8"),
    ("/x?%ff=1", "UTF-8"),
]


@pytest.mark.parametrize(("target", "why"), BAD, ids=[repr(c[0]) for c in BAD])
def test_unreadable_targets_raise_bad_target(target: str, why: str) -> None:
    for raw in (target, target.encode("latin-1")):
        with pytest.raises(BadTarget, match=why):
            parse_target(raw)


NON_ASCII_BYTES = [b"/\xc3\xa9", b"/containers/create\xff", b"/v1.41/\x80info", b"/x?q=\xe9"]


@pytest.mark.parametrize("target", NON_ASCII_BYTES, ids=repr)
def test_non_ascii_bytes_raise_bad_target(target: bytes) -> None:
    with pytest.raises(BadTarget, match="not ASCII"):
        parse_target(target)


def test_non_ascii_text_is_refused_like_its_bytes() -> None:
    """A target given as text is read like the same target given as bytes: not ASCII is not a
    request target (``BadTarget``'s own contract), whichever type it arrives as."""
    with pytest.raises(BadTarget):
        parse_target("/containers/cr\u00e9ate")


INVALID_ESCAPES = ["/a%zz", "/a%", "/a%2", "/containers%2/create", "/x?q=%zz"]


@pytest.mark.parametrize("target", INVALID_ESCAPES, ids=INVALID_ESCAPES)
def test_invalid_percent_escapes_raise_bad_target(target: str) -> None:
    """``BadTarget`` is documented for bad escapes; Go's url parser answers 400 to them."""
    with pytest.raises(BadTarget):
        parse_target(target)


@pytest.mark.parametrize(
    ("path", "normal"),
    [
        ("", "/"),
        ("/", "/"),
        ("a/b", "/a/b"),
        ("//a//b//", "/a/b"),
        ("/a/./b/../c", "/a/c"),
        ("/../..", "/"),
        ("///", "/"),
    ],
    ids=["empty", "root", "relative", "slashes", "dots", "above-root", "only-slashes"],
)
def test_normalize_path(path: str, normal: str) -> None:
    assert normalize_path(path) == normal


# --- properties --------------------------------------------------------------------------------

_PIECES = st.sampled_from(
    [
        "/",
        "//",
        ".",
        "..",
        "%2F",
        "%2f",
        "%2e",
        "%00",
        "%",
        "%zz",
        "%C3%A9",
        "%ff",
        "?",
        "&",
        "=",
        "+",
        "#",
        "v1.41",
        "V1.41",
        "containers",
        "create",
        "json",
        "images",
        "http://x",
        "\x00",
        "\u00e9",
        " ",
        "\t",
        ";",
    ]
)
near_targets = st.lists(_PIECES | st.text(max_size=3), max_size=12).map("".join)


def _holds(target: bytes | str) -> None:
    try:
        parsed = parse_target(target)
    except BadTarget:
        return
    assert isinstance(parsed, ApiTarget)
    path = parsed.path
    assert path.startswith("/")
    assert "//" not in path
    assert path == "/" or not path.endswith("/")
    assert not {".", ".."} & set(path.split("/"))
    assert "\x00" not in path
    again = parse_target(quote(path, safe="/"))  # the path re-encoded reads back the same
    if parsed.version is None:
        assert again.path == path
    for values in parsed.query.values():
        assert values


@FUZZ
@given(st.binary(max_size=64))
def test_any_bytes_parse_or_raise_bad_target(target: bytes) -> None:
    _holds(target)


@FUZZ
@given(st.text(max_size=64))
def test_any_text_parses_or_raises_bad_target(target: str) -> None:
    _holds(target)


@FUZZ
@given(near_targets)
def test_near_targets_parse_or_raise_bad_target(target: str) -> None:
    _holds(target)
    _holds("/" + target)
    _holds(("/" + target).encode("utf-8"))
