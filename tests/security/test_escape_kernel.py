"""The host kernel's own knobs and logs, out of reach of an eci ``--privileged`` root.

Each check first runs in the plain-runc control (every capability, no LSM, no masked paths),
where it works, then in eci, where the kernel must refuse it. Writes only ever put back the
value just read; where this kernel lacks a file (built without it) both runs say so.
"""

from __future__ import annotations

import pytest
from tests.security.escape import (
    MOUNT_DENIED,
    assert_write_refused,
    in_control,
    in_eci,
    write_back,
    written_or_absent,
)
from tests.support import EngineHandle

pytestmark = pytest.mark.engine

#: the host's own sysfs for the control (Docker's is read-only without --privileged)
HOST_SYSFS = ("-v", "/sys:/sys")

KNOBS = [
    "/proc/sys/kernel/core_pattern",
    "/proc/sys/kernel/threads-max",
    "/proc/sys/vm/swappiness",
    "/proc/sys/fs/pipe-max-size",
    "/sys/kernel/uevent_helper",
    "/sys/module/printk/parameters/time",
    "/sys/kernel/rcu_expedited",
]


@pytest.mark.parametrize("path", KNOBS, ids=[p.removeprefix("/") for p in KNOBS])
def test_host_kernel_knob_cannot_be_written(engine: EngineHandle, path: str) -> None:
    """Global sysctls and sysfs files steer the host kernel (core_pattern and uevent_helper
    even run a program as host root)."""
    script = write_back(path)
    assert in_control(engine, script, *HOST_SYSFS).lines == written_or_absent(path)
    assert_write_refused(in_eci(engine, script), path)


def test_sysrq_trigger_cannot_be_opened_for_writing(engine: EngineHandle) -> None:
    """One byte written there can crash or reboot the host, so nothing is written even in the
    control: opening for append (no truncation) proves the write would be allowed."""
    path = "/proc/sysrq-trigger"
    script = f"[ -e {path} ] || {{ echo absent; exit 0; }}; (exec 3>>{path}) && echo written"
    assert in_control(engine, script).lines == written_or_absent(path)
    assert_write_refused(in_eci(engine, script), path)


def test_kernel_log_cannot_be_read(engine: EngineHandle) -> None:
    """The host's kernel log (dmesg_restrict) shows other tenants' and the host's events."""
    script = "dmesg >/dev/null && echo read"
    assert in_control(engine, script).lines == ["read"]
    refused = in_eci(engine, script)
    assert refused.lines == []
    assert "dmesg: klogctl: Operation not permitted" in refused.stderr


def test_kernel_symbol_addresses_stay_hidden(engine: EngineHandle) -> None:
    """Real kernel addresses defeat KASLR, the first step of most kernel exploits."""
    script = "grep ' T ' /proc/kallsyms | head -3 | cut -d' ' -f1"
    addresses = in_control(engine, script).lines
    assert len(addresses) == 3
    assert all(int(a, 16) != 0 for a in addresses)
    hidden = in_eci(engine, script).lines
    assert all(int(a, 16) == 0 for a in hidden)


@pytest.mark.parametrize(
    "hierarchy", ["memory", "none,name=eci-escape"], ids=["existing", "new-named"]
)
def test_cgroup_v1_release_agent_cannot_be_set(engine: EngineHandle, hierarchy: str) -> None:
    """CVE-2022-0492: a v1 hierarchy's release_agent runs as host root when a cgroup empties.
    The control writes the current value back (empty: no agent)."""
    script = (
        f"mkdir /m && mount -t cgroup -o {hierarchy} cgroup /m && echo mounted && "
        'v=$(cat /m/release_agent) && echo "$v" > /m/release_agent && echo written'
    )
    assert in_control(engine, script).lines == ["mounted", "written"]
    refused = in_eci(engine, script)
    assert "written" not in refused.lines
    assert any(
        sign in refused.stderr
        for sign in (
            MOUNT_DENIED,  # a new hierarchy, or any, when eci vets mounts
            "can't open '/m/release_agent': No such file or directory",  # cgroupns: not root
            "can't create /m/release_agent: Operation not permitted",  # the kernel's own check
        )
    ), refused


@pytest.mark.parametrize("fstype", ["debugfs", "tracefs", "securityfs"])
def test_kernel_debug_filesystems_cannot_be_mounted(engine: EngineHandle, fstype: str) -> None:
    """debugfs and tracefs expose and steer kernel internals; securityfs the LSM policy."""
    script = f"mkdir /m && mount -t {fstype} none /m && echo mounted"
    assert in_control(engine, script).lines == ["mounted"]
    refused = in_eci(engine, script)
    assert refused.lines == []
    assert MOUNT_DENIED in refused.stderr
