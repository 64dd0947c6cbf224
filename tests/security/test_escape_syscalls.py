"""Kernel-wide system calls an eci ``--privileged`` root must not make, tried with probe.c.

Each call is made harmlessly (a junk module image, kexec without files, a BPF program dropped
at exit, a swap file without a signature, a clock tick the kernel rejects as out of range)
first in the plain-runc control, where it gets past the kernel's permission check, then in
eci, where it must stop there. The new mount API is refused outright (ENOSYS): its calls
would bypass eci's vetting of mount(2).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.security.escape import build_probe, in_control, in_eci, probe
from tests.support import EngineHandle

pytestmark = pytest.mark.engine

#: what the probe prints when this kernel lacks the call altogether (built without it)
NOT_BUILT = "errno=ENOSYS"


@pytest.fixture(scope="session")
def probe_mount() -> Iterator[list[str]]:
    """probe.c compiled once, in a directory any container may bind read-only."""
    directory = Path(tempfile.mkdtemp(prefix="eci-probe-", dir="/tmp"))
    directory.chmod(0o755)
    try:
        yield build_probe(directory)
    finally:
        shutil.rmtree(directory)


@dataclass(frozen=True)
class Call:
    """A probe check, the shell set-up it needs, and the answers expected from each side."""

    check: str
    control: frozenset[str]
    refusal: str
    setup: str = ""
    path: str = ""

    def script(self) -> str:
        return f"{self.setup}{probe(self.check, self.path)}"


KERNEL_CALLS = [
    # modular kernels: ENOEXEC (junk) or EKEYREJECTED (signatures enforced)
    Call("init_module", frozenset({"errno=ENOEXEC", "errno=EKEYREJECTED", NOT_BUILT}), "EPERM"),
    Call("kexec_file_load", frozenset({"errno=EBADF", NOT_BUILT}), "EPERM"),
    Call("bpf_prog_load", frozenset({"ok"}), "EPERM"),
    Call("perf_cpu", frozenset({"ok"}), "EACCES"),
    Call(
        "swapon",
        frozenset({"errno=EINVAL"}),
        "EPERM",
        setup="dd if=/dev/zero of=/tmp/junk bs=4096 count=16 2>/dev/null && ",
        path="/tmp/junk",
    ),
    Call("adjtimex", frozenset({"errno=EINVAL"}), "EPERM"),
]


@pytest.mark.parametrize("call", KERNEL_CALLS, ids=[c.check for c in KERNEL_CALLS])
def test_kernel_wide_call_is_refused(
    engine: EngineHandle, probe_mount: list[str], call: Call
) -> None:
    """Loading kernel code (modules, kexec, BPF), watching every task on a CPU, adding swap or
    steering the clock act on the whole host, never on one container."""
    control = in_control(engine, call.script(), *probe_mount).lines
    assert len(control) == 1
    assert control[0] in call.control
    expected = {f"errno={call.refusal}"}
    if control == [NOT_BUILT]:  # this kernel has no such call: nobody can make it
        expected.add(NOT_BUILT)
    confined = in_eci(engine, call.script(), *probe_mount).lines
    assert len(confined) == 1
    assert confined[0] in expected


MOUNT_API = [
    Call("open_tree", frozenset({"ok"}), "ENOSYS", path="/"),
    Call("fsopen", frozenset({"ok"}), "ENOSYS"),
    Call("move_mount", frozenset({"ok"}), "ENOSYS", setup="mkdir /mnt && ", path="/mnt"),
    Call(
        "mount_setattr",
        frozenset({"ok"}),
        "ENOSYS",
        setup="mkdir /mnt && mount -t tmpfs t /mnt && ",
        path="/mnt",
    ),
]


@pytest.mark.parametrize("call", MOUNT_API, ids=[c.check for c in MOUNT_API])
def test_new_mount_api_is_not_available(
    engine: EngineHandle, probe_mount: list[str], call: Call
) -> None:
    """open_tree/move_mount clone and attach mounts, fsopen makes new superblocks and
    mount_setattr changes mount flags, all past any vetting of mount(2)."""
    assert in_control(engine, call.script(), *probe_mount).lines in [[a] for a in call.control]
    assert in_eci(engine, call.script(), *probe_mount).lines == [f"errno={call.refusal}"]


def test_a_runtime_mount_cannot_be_reached_from_outside_a_chroot(
    engine: EngineHandle, probe_mount: list[str]
) -> None:
    """chroot without chdir leaves the cwd outside the new root; a relative umount2 then names
    a mask the caller's mount table no longer shows. eci refuses what it cannot see."""
    script = probe("chroot_umount", "proc/keys")
    assert in_control(engine, script, *probe_mount, masked=True).lines == ["ok"]
    assert in_eci(engine, script, *probe_mount).lines == ["errno=EPERM"]
