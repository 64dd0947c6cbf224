"""Immutable mounts: what eci sets up for a ``--privileged`` container stays as it was set up.

The control is plain runc with every capability and Docker's own protections in place
(masked and read-only /proc paths, read-only binds): there root undoes them with a remount
or an unmount. In eci the same calls fail, while a workload's own mounts, and making a
mount *more* restrictive, keep working.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.security.escape import (
    MEMORY,
    MEMORY_KB,
    MOUNT_DENIED,
    host_file,
    host_mem_total_kb,
    host_uptime,
    in_control,
    in_eci,
    mem_total_kb,
)
from tests.support import EngineHandle, user_owned_dir

pytestmark = pytest.mark.engine

UMOUNT_DENIED = "umount: can't unmount {path}: Operation not permitted"


@pytest.fixture
def tester_dir() -> Iterator[Path]:
    """A host directory of the test user: its container root may write there if allowed."""
    with user_owned_dir("eci-mounts-") as path:
        yield path


@pytest.fixture
def fake_meminfo() -> Iterator[Path]:
    """Stands in for lxcfs in the control: a file mounted over /proc/meminfo."""
    with host_file("eci-meminfo-", f"MemTotal: {MEMORY_KB} kB\n") as path:
        yield path


def test_read_only_bind_cannot_be_remounted_read_write(
    engine: EngineHandle, tester_dir: Path
) -> None:
    """A `:ro` bind of the user's own directory: remounted rw, root would write there."""
    script = "mount -o remount,rw /data && touch /data/probe && echo wrote"
    bind = ("-v", f"{tester_dir}:/data:ro")
    assert in_control(engine, script, *bind).lines == ["wrote"]
    (tester_dir / "probe").unlink()
    refused = in_eci(engine, script, *bind)
    assert refused.lines == []
    assert MOUNT_DENIED in refused.stderr
    assert not (tester_dir / "probe").exists()


@pytest.mark.parametrize("path", ["/proc/bus", "/proc/fs", "/proc/irq"])
def test_the_runtimes_read_only_proc_paths_stay_read_only(engine: EngineHandle, path: str) -> None:
    """Read-only for every container, --privileged too (this kernel has no sysrq-trigger,
    also read-only where there is one). (/proc/sys stays as Docker sets it: the
    user namespace keeps the host's sysctls unwritable, see test_escape_kernel, and DinD
    writes its own net.* sysctls.)"""
    script = (
        f"mount -o remount,rw,bind {path} && echo remounted; "
        f"grep -c ' {path} ro,' /proc/self/mountinfo"
    )
    assert in_control(engine, script, masked=True).lines == ["remounted", "0"]
    refused = in_eci(engine, script)
    assert MOUNT_DENIED in refused.stderr
    assert refused.lines == ["1"]


@pytest.mark.parametrize("path", ["/proc/keys", "/proc/timer_list"])
def test_masked_proc_file_cannot_be_unmasked(engine: EngineHandle, path: str) -> None:
    """Masked /proc files are /dev/null mounted over the real ones (this kernel has no
    /proc/kcore or /proc/sched_debug to mask; these two are masked alike)."""
    script = f"umount {path} && echo unmounted; stat -c %F {path}"
    assert in_control(engine, script, masked=True).lines == ["unmounted", "regular empty file"]
    refused = in_eci(engine, script)
    assert refused.lines == ["character special file"]
    assert UMOUNT_DENIED.format(path=path) in refused.stderr


UNCOVERING = {
    # lxcfs's /proc/meminfo is a mount over the host's: unmounted, the host's shows
    "unmount-meminfo": (
        "umount /proc/meminfo && echo done",
        UMOUNT_DENIED.format(path="/proc/meminfo"),
    ),
    # a fresh procfs over /proc would uncover every masked and virtualized file
    "procfs-over-proc": ("mount -t proc proc /proc && echo done", MOUNT_DENIED),
}


@pytest.mark.parametrize(("script", "denied"), UNCOVERING.values(), ids=UNCOVERING.keys())
def test_the_virtualized_meminfo_cannot_be_uncovered(
    engine: EngineHandle, fake_meminfo: Path, script: str, denied: str
) -> None:
    script = f"{script}; grep MemTotal /proc/meminfo"
    bind = ("-v", f"{fake_meminfo}:/proc/meminfo:ro")
    control = in_control(engine, script, *bind, *MEMORY, masked=True).lines
    assert control[0] == "done"
    assert mem_total_kb(control) == host_mem_total_kb()
    refused = in_eci(engine, script, *MEMORY)
    assert mem_total_kb(refused.lines) == MEMORY_KB
    assert denied in refused.stderr


def test_proc_file_cannot_be_bound_over(engine: EngineHandle) -> None:
    """What eci puts at /proc paths is its own: nothing may be mounted over it."""
    script = "echo '0.00 0.00' > /tmp/x && mount --bind /tmp/x /proc/uptime && echo mounted"
    assert in_control(engine, script, masked=True).lines == ["mounted"]
    refused = in_eci(engine, script)
    assert refused.lines == []
    assert MOUNT_DENIED in refused.stderr


@pytest.mark.parametrize("path", ["/proc", "/sys"])
def test_system_filesystem_cannot_be_unmounted(engine: EngineHandle, path: str) -> None:
    """Detaching /proc or /sys drops every mask and read-only mount below it with it."""
    script = f"umount -l {path} && echo unmounted"
    assert in_control(engine, script, masked=True).lines == ["unmounted"]
    refused = in_eci(engine, script)
    assert refused.lines == []
    assert UMOUNT_DENIED.format(path=path) in refused.stderr


def test_read_write_bind_can_still_be_made_read_only(
    engine: EngineHandle, tester_dir: Path
) -> None:
    """Making a mount more restrictive is no escape: it keeps working."""
    script = "mount -o remount,ro,bind /data && echo remounted; touch /data/probe"
    bind = ("-v", f"{tester_dir}:/data")
    for outcome in (in_control(engine, script, *bind), in_eci(engine, script, *bind)):
        assert outcome.lines == ["remounted"]
        assert "touch: /data/probe: Read-only file system" in outcome.stderr
    assert not (tester_dir / "probe").exists()


OVERLAY = "mount -t tmpfs t /tmp && cd /tmp && mkdir l u w m && echo ok > l/f && mount -t overlay"
WORKLOAD_MOUNTS = {
    "tmpfs": "mkdir /m && mount -t tmpfs t /m && echo ok > /m/f && cat /m/f",
    "bind": "mkdir /a /b && echo ok > /a/f && mount --bind /a /b && cat /b/f",
    "overlay": f"{OVERLAY} o -o lowerdir=/tmp/l,upperdir=/tmp/u,workdir=/tmp/w /tmp/m && cat m/f",
    # the kernel resolves relative paths against the caller's working directory
    "overlay-relative": f"{OVERLAY} o -o lowerdir=l,upperdir=u,workdir=w m && cat m/f",
}


@pytest.mark.parametrize("script", WORKLOAD_MOUNTS.values(), ids=WORKLOAD_MOUNTS.keys())
def test_workload_mounts_keep_working(engine: EngineHandle, script: str) -> None:
    """Images that build or sandbox things mount tmpfs, binds and overlays of their own."""
    assert in_control(engine, script).lines == ["ok"]
    confined = in_eci(engine, script)
    assert confined.lines == ["ok"], confined


def test_fresh_procfs_is_virtualized_too(engine: EngineHandle) -> None:
    """A procfs the workload mounts itself works, and shows the container, not the host."""
    script = "mkdir /p && mount -t proc proc /p && grep MemTotal /p/meminfo && cat /p/uptime"
    control = in_control(engine, script, *MEMORY).lines
    assert mem_total_kb(control) == host_mem_total_kb()
    assert float(control[-1].split()[0]) == pytest.approx(host_uptime(), abs=10)
    confined = in_eci(engine, script, *MEMORY).lines
    assert mem_total_kb(confined) == MEMORY_KB
    assert float(confined[-1].split()[0]) < 10


def test_a_fresh_sysfs_is_masked_like_the_containers(engine: EngineHandle) -> None:
    """A new sysfs mount would show /sys/firmware, which the container's own /sys masks."""
    script = "mkdir -p /s && mount -t sysfs s /s && ls /s/firmware | wc -l"
    assert int(in_control(engine, script, masked=True).stdout) > 0
    assert in_eci(engine, script).lines == ["0"]


def test_an_overlay_of_sys_is_refused(engine: EngineHandle) -> None:
    """An overlay layer is a view of a directory without the mounts below it: /sys unmasked."""
    script = "mkdir -p /o /e && mount -t overlay o -o lowerdir=/sys:/e /o && ls /o/firmware | wc -l"
    assert int(in_control(engine, script, masked=True).stdout) > 0
    refused = in_eci(engine, script)
    assert refused.lines == []
    assert MOUNT_DENIED in refused.stderr
