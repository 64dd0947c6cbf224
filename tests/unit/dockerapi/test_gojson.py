"""`gojson.decode` and `GoObject` lookups read a body the way dockerd's Go structs are filled.

Hypothesis invariant (test_any_bytes_*, test_json_documents_*, test_jsonish_text_*): for ANY
body, `decode` returns a value (objects as `GoObject`, recursively) or raises `BodyError`;
nothing else escapes, not even for deep nesting or huge numbers. Second property: every
object `decode` returns answers `field(name)` for every key it holds, with that key's value
or `AmbiguousBody`, never anything else; and re-encoding a decoded value decodes to the
same value.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.gostrategies import KELVIN, LONG_S, go_spellings, json_documents

from eci.dockerapi import gojson
from eci.dockerapi.gojson import AmbiguousBody, BodyError, GoObject, InvalidBody, decode, fold

FUZZ = settings(max_examples=400, deadline=None)


# --- lookups -----------------------------------------------------------------------------------

LOOKUPS = [
    # (body, field, value)
    ('{"HostConfig": 1}', "HostConfig", 1),
    ('{"hostconfig": 1}', "HostConfig", 1),
    ('{"HOSTCONFIG": 1}', "HostConfig", 1),
    ('{"hOsTcOnFiG": 1}', "HostConfig", 1),
    (f'{{"Ho{LONG_S}tConfig": 1}}', "HostConfig", 1),
    (f'{{"HO{LONG_S}TCONFIG": 1}}', "HostConfig", 1),
    (f'{{"Networ{KELVIN}Mode": "host"}}', "NetworkMode", "host"),
    (f'{{"networ{KELVIN}mode": "host"}}', "NetworkMode", "host"),
    (f'{{"Privileged": true, "{LONG_S}": 2}}', "S", 2),
    ('{"PidMode": "host"}', "pidmode", "host"),
    ('{"PidMode": null}', "PidMode", None),
    ('{"Other": 1}', "PidMode", None),
    ("{}", "PidMode", None),
    ('{"Pid_Mode": 1}', "PidMode", None),  # Go v1 does not ignore underscores
    ('{"PidMode ": 1}', "PidMode", None),
    ('{"P\u0131dMode": 1}', "PidMode", None),  # dotless i folds to nothing ASCII in Go
    ('{"P\u0130dMode": 1}', "PidMode", None),
    ('{"Pidmod\u00e9": 1}', "PidMode", None),
]


@pytest.mark.parametrize(("body", "name", "value"), LOOKUPS, ids=[c[0] for c in LOOKUPS])
def test_field_lookup_folds_like_go(body: str, name: str, value: Any) -> None:
    assert decode(body.encode()).field(name) == value


@pytest.mark.parametrize(
    ("key", "folded"),
    [
        ("HostConfig", "hostconfig"),
        (f"Networ{KELVIN}Mode", "networkmode"),
        (f"{LONG_S}ecurity", "security"),
        ("\u00c9T\u00c9", "\u00c9t\u00c9"),  # non-ASCII letters never fold to ASCII
        ("\u0131", "\u0131"),
        ("", ""),
    ],
    ids=["ascii", "kelvin", "long-s", "non-ascii", "dotless-i", "empty"],
)
def test_fold(key: str, folded: str) -> None:
    assert fold(key) == folded


AMBIGUOUS = [
    '{"HostConfig": {}, "hostconfig": {}}',
    '{"HostConfig": {}, "HOSTCONFIG": null}',
    f'{{"HostConfig": 1, "Ho{LONG_S}tConfig": 2}}',
    f'{{"NetworkMode": "bridge", "Networ{KELVIN}Mode": "host"}}',
    f'{{"networkmode": "bridge", "networ{KELVIN}mode": "host"}}',
]


@pytest.mark.parametrize("body", AMBIGUOUS, ids=AMBIGUOUS)
def test_two_keys_for_one_field_are_ambiguous(body: str) -> None:
    obj = decode(body.encode())
    name = "HostConfig" if "onfig" in body.lower() else "NetworkMode"
    with pytest.raises(AmbiguousBody, match="all set the field"):
        obj.field(name)
    with pytest.raises(AmbiguousBody):
        obj.string(name) if name == "NetworkMode" else obj.obj(name)
    assert len(obj.field_keys(name)) == 2


def test_map_keys_stay_exact() -> None:
    """Map-typed values (Labels, DriverOpts) keep every key exactly, case and all."""
    obj = decode(b'{"Labels": {"a": "1", "A": "2", "\\u212a": "3", "k": "4"}}')
    labels = obj.field("Labels")
    assert isinstance(labels, GoObject)
    assert dict(labels) == {"a": "1", "A": "2", KELVIN: "3", "k": "4"}


EXACT_DUPLICATES = [
    b'{"a": 1, "a": 2}',
    b'{"a": 1, "b": 0, "a": 2}',
    b'{"a": "x", "a": null}',
    b'{"a": [1, 2], "a": []}',
    b'{"Labels": {"k": "1", "k": "2"}}',
    b'[{"HostConfig": {}, "HostConfig": {}}]',
]


@pytest.mark.parametrize("body", EXACT_DUPLICATES, ids=[repr(b) for b in EXACT_DUPLICATES])
def test_exact_duplicate_keys_are_ambiguous(body: bytes) -> None:
    """Go keeps the last scalar but decodes a repeated struct or map *into* the first one;
    no single reading reproduces both, so a key repeated in one object is refused at once."""
    with pytest.raises(AmbiguousBody, match="appears twice"):
        decode(body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"HostConfig": {"Binds": ["/etc/docker:/x"]}, "HostConfig": {"Runtime": "sysbox-runc"}}',
        b'{"DriverOpts": {"device": "/etc/docker", "o": "bind"}, "DriverOpts": {}}',
    ],
    ids=["struct", "map"],
)
def test_exact_duplicate_object_keys_merge_like_go_or_are_refused(body: bytes) -> None:
    """Go decodes a repeated object key *into* the value the first one filled (a struct
    pointer or a map is reused, not replaced): the fields of the first object survive. A
    decoder that keeps only the last object hides them from the policy."""
    try:
        value = decode(body)
    except AmbiguousBody:
        return
    first = json.loads(body.split(b"}, ")[0].split(b": ", 1)[1] + b"}")
    merged = next(iter(value.values()))
    for key, inner in first.items():
        assert merged.get(key) == inner


# --- what Go refuses ----------------------------------------------------------------------------

INVALID = [
    (b"NaN", "NaN"),
    (b"-NaN", "not valid JSON"),
    (b"Infinity", "Infinity"),
    (b"-Infinity", "Infinity"),
    (b'{"Memory": NaN}', "NaN"),
    (b'{"x": [Infinity]}', "Infinity"),
    (b"\xff", "UTF-8"),
    (b'{"a": "\xc3"}', "UTF-8"),
    (b'{"a": "\xed\xa0\x80"}', "UTF-8"),  # a surrogate encoded as UTF-8 is not UTF-8
    (b"\xfe\xff\x00{\x00}", "UTF-8"),
    (b"\xef\xbb\xbf{}", "not valid JSON"),
    (b"{} x", "not valid JSON"),
    (b'{"a": 1}{"a": 2}', "not valid JSON"),
    (b"{}\n{}", "not valid JSON"),
    (b"01", "not valid JSON"),
    (b"", "not valid JSON"),
    (b"   ", "not valid JSON"),
    (b"{", "not valid JSON"),
    (b'{"a": 1,}', "not valid JSON"),
    (b"[1, 2,]", "not valid JSON"),
    (b"{'a': 1}", "not valid JSON"),
    (b'{"a": 1 // c\n}', "not valid JSON"),
    (b"\x00", "not valid JSON"),
    (b"1" * 5000, "not valid JSON"),
]


@pytest.mark.parametrize(("body", "why"), INVALID, ids=[repr(c[0][:24]) for c in INVALID])
def test_what_go_refuses_is_invalid_body(body: bytes, why: str) -> None:
    with pytest.raises(InvalidBody, match=why):
        decode(body)


@pytest.mark.parametrize("body", [b"1e999", b"-1e999", b'{"CpuShares": 1e400}'], ids=repr)
def test_numbers_out_of_float_range_are_refused(body: bytes) -> None:
    """Go refuses a number it cannot represent (``strconv.ParseFloat``: value out of range);
    here it would become ``inf`` and be re-encoded as ``Infinity``, which is not JSON."""
    with pytest.raises(InvalidBody):
        decode(body)


VALID: list[tuple[bytes, Any]] = [
    (b"{}", {}),
    (b" {} \r\n\t", {}),
    (b"null", None),
    (b"true", True),
    (b"0", 0),
    (b"-1.5e3", -1500.0),
    (b'"x"', "x"),
    (b"[]", []),
    (b'{"a": {"b": [1, {"c": null}]}}', {"a": {"b": [1, {"c": None}]}}),
    (b'"\\u00e9\\u212a"', "\u00e9\u212a"),
    ('{"\u00e9": "\u212a"}'.encode(), {"\u00e9": "\u212a"}),
    (b'"\\u0000"', "\x00"),
]


@pytest.mark.parametrize(("body", "value"), VALID, ids=[repr(c[0]) for c in VALID])
def test_valid_json_decodes(body: bytes, value: Any) -> None:
    assert decode(body) == value


def test_objects_are_go_objects_at_every_depth() -> None:
    value = decode(b'{"a": [{"b": {"c": {}}}]}')
    assert isinstance(value, GoObject)
    assert isinstance(value["a"][0], GoObject)
    assert isinstance(value["a"][0]["b"]["c"], GoObject)


@pytest.mark.parametrize("depth", [5000, 100_000], ids=str)
@pytest.mark.parametrize("open_close", [(b"[", b"]"), (b'{"a":', b"}")], ids=["list", "object"])
def test_deep_nesting_is_refused_not_a_recursion_error(
    depth: int, open_close: tuple[bytes, bytes]
) -> None:
    opening, closing = open_close
    with pytest.raises(InvalidBody, match="nests too deeply"):
        decode(opening * depth + b"1" + closing * depth)


@pytest.mark.parametrize("depth", [100, 500, 900, 990, 1000, 1100, 2000], ids=str)
def test_any_nesting_depth_decodes_or_is_refused(depth: int) -> None:
    """Where Python's own recursion limit falls depends on the caller's stack: whatever the
    depth, the outcome is a value or ``InvalidBody``, never ``RecursionError``."""
    body = b'{"a":' * depth + b"[]" + b"}" * depth
    try:
        value = decode(body)
    except InvalidBody:
        return
    for _ in range(depth):
        value = value.field("A")
    assert value == []


def test_unclosed_deep_nesting_is_refused() -> None:
    with pytest.raises(InvalidBody):
        decode(b"[" * 100_000)


# --- typed accessors ----------------------------------------------------------------------------

TYPED = decode(
    b'{"S": "x", "N": null, "B": true, "L": [1], "O": {}, "I": 1, "F": 1.5, "BS": "true"}'
)


@pytest.mark.parametrize(
    ("accessor", "name", "value"),
    [
        ("string", "S", "x"),
        ("string", "N", ""),
        ("string", "Absent", ""),
        ("flag", "B", True),
        ("flag", "N", False),
        ("flag", "Absent", False),
        ("array", "L", [1]),
        ("array", "N", []),
        ("array", "Absent", []),
        ("obj", "O", {}),
        ("obj", "N", None),
        ("obj", "Absent", None),
    ],
    ids=lambda v: str(v),
)
def test_typed_accessors(accessor: str, name: str, value: Any) -> None:
    assert getattr(TYPED, accessor)(name) == value


@pytest.mark.parametrize(
    ("accessor", "name"),
    [
        ("string", "I"),
        ("string", "O"),
        ("string", "L"),
        ("flag", "BS"),
        ("flag", "I"),
        ("array", "O"),
        ("array", "S"),
        ("obj", "L"),
        ("obj", "S"),
        ("obj", "F"),
    ],
    ids=lambda v: str(v),
)
def test_typed_accessors_refuse_the_wrong_type(accessor: str, name: str) -> None:
    with pytest.raises(InvalidBody, match="must be"):
        getattr(TYPED, accessor)(name)


def test_encode_round_trips_and_keeps_non_ascii() -> None:
    value = decode('{"Labels": {"\u00e9": "\u212a"}, "a": [1, 2.5, null, true]}'.encode())
    encoded = gojson.encode(value)
    assert "\u00e9".encode() in encoded
    assert decode(encoded) == value


# --- properties ---------------------------------------------------------------------------------

FIELD_NAMES = [
    "HostConfig",
    "PidMode",
    "NetworkMode",
    "Binds",
    "Mounts",
    "Runtime",
    "Privileged",
    "Labels",
    "Image",
    "Source",
    "Type",
]


_variant = go_spellings


keys = st.sampled_from(FIELD_NAMES).flatmap(_variant) | st.text(max_size=6)
documents = json_documents(keys, integer_bits=70)
_TOKENS = st.sampled_from(
    [
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        '"',
        "\\",
        "\\u",
        "\\ud800",
        "\\udc00",
        "\\u212a",
        "NaN",
        "Infinity",
        "-",
        "1e999",
        "0",
        "1.5",
        "true",
        "null",
        " ",
        "\n",
        '"HostConfig"',
        '"hostconfig"',
        '"PidMode"',
        '"host"',
    ]
)
jsonish_text = st.lists(_TOKENS | st.text(max_size=2), max_size=30).map("".join)


def _check_objects(value: Any) -> None:
    if isinstance(value, list):
        for item in value:
            _check_objects(item)
    elif isinstance(value, dict):
        assert isinstance(value, GoObject)
        for key, item in value.items():
            try:
                found = value.field(key)
            except AmbiguousBody:
                assert len(value.field_keys(key)) > 1
            else:
                assert value.field_keys(key) == [key]
                assert found is item
            _check_objects(item)


def _holds(body: bytes) -> None:
    try:
        value = decode(body)
    except BodyError:
        return
    _check_objects(value)
    assert decode(gojson.encode(value)) == value


@FUZZ
@given(st.binary(max_size=200))
def test_any_bytes_decode_or_raise_body_error(body: bytes) -> None:
    _holds(body)


@settings(max_examples=150, deadline=None)
@given(documents)
def test_json_documents_decode_to_themselves(document: Any) -> None:
    body = json.dumps(document).encode()
    assert decode(body) == document
    _holds(body)


@FUZZ
@given(jsonish_text)
def test_jsonish_text_decodes_or_raises_body_error(text: str) -> None:
    _holds(text.encode("utf-8", "surrogatepass"))
    _holds(text.encode("utf-8", "replace"))


@pytest.mark.parametrize(
    "body",
    [b'"\\ud800"', b'{"Labels": {"a": "\\udc00x"}}', b'["\\ud83d"]', b'{"\\ud800": 1}'],
    ids=["high", "low-in-map", "unpaired-high-in-list", "as-key"],
)
def test_lone_surrogate_escapes_decode_to_what_encode_can_write(body: bytes) -> None:
    """Go decodes a lone ``\\ud800`` as U+FFFD. Whatever ``decode`` makes of it, the proxy
    must be able to forward it re-encoded: ``encode`` of a decoded value never fails."""
    try:
        value = decode(body)
    except InvalidBody:
        return
    assert decode(gojson.encode(value)) == value
