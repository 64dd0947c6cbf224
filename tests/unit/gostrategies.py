"""Hypothesis strategies shared by the parser and policy property tests: Go-foldable
spellings of field names, and JSON documents built from chosen keys and scalars."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st

KELVIN = "\u212a"  # Go folds it to k
LONG_S = "\u017f"  # Go folds it to s


def go_spellings(name: str, folds: bool = True) -> st.SearchStrategy[str]:
    """Any letter case of ``name``; with ``folds``, Go's U+212A/U+017F for its k and s."""

    def spell(flips: list[int]) -> str:
        out = []
        for ch, flip in zip(name, flips, strict=True):
            if flip == 1:
                ch = ch.swapcase()
            elif flip == 2 and folds and ch.lower() == "k":
                ch = KELVIN
            elif flip == 2 and folds and ch.lower() == "s":
                ch = LONG_S
            out.append(ch)
        return "".join(out)

    return st.lists(st.integers(0, 2), min_size=len(name), max_size=len(name)).map(spell)


def json_documents(
    keys: st.SearchStrategy[str],
    extra_scalars: Sequence[Any] = (),
    integer_bits: int = 64,
    max_leaves: int = 15,
) -> st.SearchStrategy[Any]:
    """JSON-able values: scalars (plus ``extra_scalars``), lists, objects keyed by ``keys``."""
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(-(2**integer_bits), 2**integer_bits)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=10)
    )
    if extra_scalars:
        scalars = scalars | st.sampled_from(list(extra_scalars))
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=6),
        max_leaves=max_leaves,
    )
