"""The host's devices, out of reach of an eci ``--privileged`` root.

The control is plain runc given the device (``--device``) or a device-cgroup rule allowing
every block device: what ``--privileged`` hands over with runc. In eci no block device is
visible, none can be made, and the host disk can be neither read nor mounted.

Some hosts (sandboxed VMs) refuse to open their disk even to host root: there the control
can only show that the node is made and the request reaches the kernel, which refuses it as
it refuses host root; the checks assert that much and say so.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.security.escape import MOUNT_DENIED, Disk, host_disk, in_control, in_eci
from tests.support import EngineHandle

pytestmark = pytest.mark.engine

ALL_BLOCK_DEVICES = ("--device-cgroup-rule", "b *:* rwm")


@pytest.fixture(scope="module")
def disk() -> Disk:
    return host_disk()


@pytest.fixture
def marker() -> Iterator[Path]:
    """A file with unique content on the host's root filesystem."""
    with tempfile.NamedTemporaryFile("w", dir="/var/tmp", prefix="eci-marker-") as f:
        f.write(f"host marker {Path(f.name).name}\n")
        f.flush()
        yield Path(f.name)


def test_host_disk_node_cannot_be_made_and_read(engine: EngineHandle, disk: Disk) -> None:
    """A device node made for the host disk's numbers reads the host's raw blocks."""
    script = (
        f"mknod /tmp/disk b {disk.major} {disk.minor} && echo made && "
        "dd if=/tmp/disk of=/dev/null bs=512 count=1 && echo read"
    )
    control = in_control(engine, script, *ALL_BLOCK_DEVICES)
    if disk.readable_by_host_root():
        assert control.lines == ["made", "read"]
    else:
        assert control.lines == ["made"]
        assert "dd: can't open '/tmp/disk': Operation not permitted" in control.stderr
    refused = in_eci(engine, script)
    assert "read" not in refused.lines
    assert any(
        sign in refused.stderr
        for sign in (
            "mknod: /tmp/disk: Operation not permitted",
            "dd: can't open '/tmp/disk': Operation not permitted",
        )
    ), refused


def test_no_block_device_is_visible(engine: EngineHandle, disk: Disk) -> None:
    """--privileged hands the container every host device node; eci hands over none."""
    script = "find /dev -type b"
    assert in_control(engine, script, "--device", disk.path).lines == [disk.path]
    assert in_eci(engine, script).lines == []


def test_host_disk_cannot_be_mounted(engine: EngineHandle, disk: Disk, marker: Path) -> None:
    """Mounting the host disk shows every host file, e.g. a marker just written there."""
    script = f"mkdir /m && mount {disk.path} /m && cat /m{marker}"
    control = in_control(engine, script, "--device", disk.path)
    if disk.readable_by_host_root():
        assert control.stdout == marker.read_text()
    else:
        assert control.lines == []
        assert MOUNT_DENIED in control.stderr
    refused = in_eci(engine, script)
    assert refused.lines == []
    assert any(
        sign in refused.stderr
        for sign in (MOUNT_DENIED, f"mount: mounting {disk.path} on /m failed: No such file")
    ), refused


def test_kernel_log_device_cannot_be_read(engine: EngineHandle) -> None:
    """/dev/kmsg is the host's kernel log (and, written, a way to forge entries in it)."""
    script = "dd if=/dev/kmsg of=/dev/null bs=8192 count=1 && echo read"
    assert in_control(engine, script, "--device", "/dev/kmsg").lines == ["read"]
    refused = in_eci(engine, script)
    assert refused.lines == []
    assert any(
        f"dd: can't open '/dev/kmsg': {why}" in refused.stderr
        for why in ("No such file or directory", "Operation not permitted")
    ), refused
