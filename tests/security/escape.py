"""Shared helpers for the escape checks: one script, run first where it must work (the control)
and then in an eci ``--privileged`` container, where it must fail.

The control is the closest plain runc gets to ``--privileged`` on these hosts (plain
``--runtime=runc --privileged`` fails: the host's bounding set lacks CAP_SYS_RESOURCE): every
other capability, no seccomp or AppArmor profile, and none of Docker's masked or read-only
/proc and /sys paths unless a check is about undoing them. It goes straight to dockerd (the
proxy would force the eci runtime). The eci run is ``--privileged`` through the proxy, as the
unprivileged test user: the attacker eci protects the host from.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support import EngineHandle, run

RUNC = "--runtime=runc"
#: Plain runc with every capability the host can grant and no LSM or seccomp confinement,
#: but with Docker's masked and read-only /proc and /sys paths (what root may try to undo).
RUNC_PRIVILEGED_MASKED = (
    RUNC,
    "--cap-add",
    "ALL",
    "--cap-drop",
    "SYS_RESOURCE",
    "--security-opt",
    "seccomp=unconfined",
    "--security-opt",
    "apparmor=unconfined",
)
#: The same without the masked paths: a privileged-equivalent container.
RUNC_PRIVILEGED = (*RUNC_PRIVILEGED_MASKED, "--security-opt", "systempaths=unconfined")
ECI_PRIVILEGED = ("--privileged",)

#: busybox mount's words for EPERM and EACCES
MOUNT_DENIED = "mount: permission denied (are you root?)"
#: what a shell says when the kernel refuses to open a file for writing
WRITE_REFUSALS = ("Permission denied", "Read-only file system", "Operation not permitted")
#: printed before the script: proof that the container started and the shell ran
STARTED = "--- container started ---"


@dataclass(frozen=True)
class Outcome:
    """What one container run printed after it started; ``stderr`` without the Docker CLI's
    warnings. A container that never started has ``started`` false (see ``stderr``)."""

    returncode: int
    started: bool
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()


def container(
    engine: EngineHandle, script: str, *options: str, direct: bool, must_start: bool = True
) -> Outcome:
    """``docker run --rm OPTIONS busybox sh -c SCRIPT``; ``direct``: to dockerd itself.
    A container that must start but did not fails the test: a refusal at create would
    otherwise pass for the kernel's refusal of the script."""
    result = engine.docker(
        "run",
        "--rm",
        *options,
        "busybox",
        "sh",
        "-c",
        f"echo '{STARTED}'; {script}",
        check=False,
        direct=direct,
    )
    before, sentinel, stdout = result.stdout.partition(f"{STARTED}\n")
    stderr = "".join(
        line for line in result.stderr.splitlines(keepends=True) if not line.startswith("WARNING:")
    )
    outcome = Outcome(result.returncode, before == "" and sentinel != "", stdout, stderr)
    assert outcome.started or not must_start, f"the container did not start: {outcome}"
    return outcome


def in_control(engine: EngineHandle, script: str, *options: str, masked: bool = False) -> Outcome:
    """``script`` in the plain-runc control; ``masked`` keeps Docker's masked /proc paths."""
    base = RUNC_PRIVILEGED_MASKED if masked else RUNC_PRIVILEGED
    return container(engine, script, *base, *options, direct=True)


def in_eci(engine: EngineHandle, script: str, *options: str) -> Outcome:
    """``script`` in an eci ``--privileged`` container, asked for by the test user."""
    return container(engine, script, *ECI_PRIVILEGED, *options, direct=False)


def write_back(path: str) -> str:
    """A script writing ``path``'s current value back: proves a write is allowed without
    changing anything. Prints ``written``, or ``absent`` when this kernel has no such file."""
    return (
        f"[ -e {path} ] || {{ echo absent; exit 0; }}; "
        f'v=$(cat {path}) && echo "$v" > {path} && echo written'
    )


def written_or_absent(path: str) -> list[str]:
    """What ``write_back(path)`` prints where the write is allowed, judged by the host."""
    return ["written"] if Path(path).exists() else ["absent"]


def assert_write_refused(outcome: Outcome, path: str) -> None:
    """``write_back(path)`` did not write, and the kernel said why (unless it has no file)."""
    assert "written" not in outcome.lines
    if outcome.lines != ["absent"]:
        assert any(f"can't create {path}: {why}" in outcome.stderr for why in WRITE_REFUSALS), (
            outcome
        )


#: the memory limit the /proc virtualization checks ask for, and what meminfo must show
MEMORY = ("--memory", "256m")
MEMORY_KB = 256 * 1024


def mem_total_kb(lines: list[str]) -> int:
    """MemTotal from meminfo lines (a container's output, or the host's file)."""
    (total,) = (line.split()[1] for line in lines if line.startswith("MemTotal:"))
    return int(total)


def host_mem_total_kb() -> int:
    return mem_total_kb(Path("/proc/meminfo").read_text().splitlines())


def host_uptime() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


@dataclass(frozen=True)
class Disk:
    """The host's first disk, as /proc/partitions lists it."""

    name: str
    major: int
    minor: int

    @property
    def path(self) -> str:
        return f"/dev/{self.name}"

    def readable_by_host_root(self) -> bool:
        """Whether root on the host itself may open it: some hosts (sandboxed VMs) refuse even
        that, and then no control can read it either."""
        try:
            os.close(os.open(self.path, os.O_RDONLY))
        except PermissionError:
            return False
        return True


def host_disk() -> Disk:
    """The first whole disk in /proc/partitions (no partition, loop, ram or zram device)."""
    for line in Path("/proc/partitions").read_text().splitlines()[2:]:
        major, minor, _blocks, name = line.split()
        virtual = name.startswith(("loop", "ram", "zram"))
        if not virtual and not Path(f"/sys/class/block/{name}/partition").exists():
            return Disk(name, int(major), int(minor))
    raise AssertionError("no disk in /proc/partitions")


PROBE_SOURCE = Path(__file__).with_name("probe.c")
#: where the probe's directory is bind-mounted read-only in a container
PROBE_DIR = "/probe"


def compile_static(source: Path, directory: Path) -> Path:
    """The C helper ``source`` built static (so it runs in busybox) into ``directory``, named
    as the file without its suffix."""
    binary = directory / source.stem
    run(["gcc", "-static", "-O2", "-Wall", "-pthread", "-o", str(binary), str(source)])
    return binary


def build_probe(directory: Path, source: Path = PROBE_SOURCE) -> list[str]:
    """Compile ``source`` (probe.c) statically into ``directory``; the ``docker run`` options
    mounting it."""
    compile_static(source, directory)
    return ["-v", f"{directory}:{PROBE_DIR}:ro"]


def probe(check: str, path: str = "") -> str:
    """The shell command running one probe check (see probe.c)."""
    return f"{PROBE_DIR}/probe {check} {path}".rstrip()


@contextlib.contextmanager
def host_file(prefix: str, text: str) -> Iterator[Path]:
    """A world-readable temporary file on the host, removed afterwards."""
    with tempfile.NamedTemporaryFile("w", dir="/tmp", prefix=prefix) as f:
        f.write(text)
        f.flush()
        Path(f.name).chmod(0o644)
        yield Path(f.name)
