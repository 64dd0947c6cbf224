"""The device table: what the proxy lets through by path, the runtime keeps by number."""

from __future__ import annotations

import os
import stat

import pytest
from tests.unit.policy.cases import BUSYBOX, FACTS, ON, create
from tests.unit.runtime.shim.test_spec import make_ctx

from eci.contract.devices import ALLOWED_DEVICE_NUMBERS, ALLOWED_DEVICES, PTY_SLAVES
from eci.errors import device_message
from eci.policy import Deny, decide
from eci.runtime.shim.spec import confine_devices

DEVICES = sorted(ALLOWED_DEVICES.items())


@pytest.mark.parametrize(("path", "number"), DEVICES, ids=[p for p, _ in DEVICES])
def test_the_numbers_are_the_host_s(path: str, number: tuple[str, int, int]) -> None:
    """The table says what the kernel says: a wrong number would let another device in."""
    if not os.path.exists(path):
        pytest.skip(f"{path} does not exist on this host")
    mode = os.stat(path)
    assert stat.S_ISCHR(mode.st_mode)
    assert ("c", os.major(mode.st_rdev), os.minor(mode.st_rdev)) == number


@pytest.mark.parametrize(("path", "number"), DEVICES, ids=[p for p, _ in DEVICES])
def test_a_device_the_proxy_allows_the_runtime_keeps(
    path: str, number: tuple[str, int, int]
) -> None:
    device = {"PathOnHost": path, "PathInContainer": path, "CgroupPermissions": "rwm"}
    body = {"Image": BUSYBOX, "HostConfig": {"Devices": [device]}}
    assert not isinstance(decide(create(body), ON, FACTS), Deny)
    kind, major, minor = number
    spec = {"linux": {"devices": [{"path": path, "type": kind, "major": major, "minor": minor}]}}
    confine_devices(spec, make_ctx())
    assert [d["path"] for d in spec["linux"]["devices"]] == [path]
    assert {"allow": True, "type": kind, "major": major, "minor": minor, "access": "rwm"} in (
        spec["linux"]["resources"]["devices"]
    )


def test_the_runtime_allows_the_named_devices_and_pty_slaves_only() -> None:
    assert set(ALLOWED_DEVICES.values()) | {PTY_SLAVES} == ALLOWED_DEVICE_NUMBERS
    assert len(ALLOWED_DEVICE_NUMBERS) == len(ALLOWED_DEVICES) + 1  # no two paths share one


def test_the_refusal_lists_every_allowed_path() -> None:
    message = device_message("/dev/vda")
    assert all(path in message for path in ALLOWED_DEVICES)
    assert "/dev/pts" not in message
