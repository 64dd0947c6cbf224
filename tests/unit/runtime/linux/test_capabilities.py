"""Reading the host's bounding set."""

from __future__ import annotations

import pytest

from eci.runtime.linux.capabilities import CAP_NAMES, bounding_set, capability_set, names_in_mask

THIS_HOST = "Name:\tx\nCapBnd:\t000001fffeffffff\n"  # every capability but CAP_SYS_RESOURCE


def test_host_without_sys_resource() -> None:
    caps = bounding_set(THIS_HOST)
    assert "CAP_SYS_RESOURCE" not in caps
    assert {"CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_CHECKPOINT_RESTORE"} <= caps
    assert len(caps) == len(CAP_NAMES) - 1


@pytest.mark.parametrize(
    ("mask", "expected"),
    [(0, set()), (1, {"CAP_CHOWN"}), (1 << 21, {"CAP_SYS_ADMIN"})],
    ids=["none", "chown", "sys-admin"],
)
def test_names_in_mask(mask: int, expected: set[str]) -> None:
    assert names_in_mask(mask) == expected


def test_numbering_matches_the_kernel() -> None:
    assert CAP_NAMES.index("CAP_SYS_ADMIN") == 21
    assert CAP_NAMES.index("CAP_SYS_RESOURCE") == 24
    assert CAP_NAMES.index("CAP_BPF") == 39


def test_missing_line_is_an_error() -> None:
    with pytest.raises(ValueError, match="CapBnd"):
        bounding_set("Name:\tx\n")


def test_capability_set_reads_any_line() -> None:
    status = "CapEff:\t0000000000200000\nCapBnd:\t0000000000000001\n"
    assert capability_set(status, "CapEff") == {"CAP_SYS_ADMIN"}
    assert capability_set(status, "CapBnd") == bounding_set(status) == {"CAP_CHOWN"}
