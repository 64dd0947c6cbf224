"""What a container spamming mount(2) costs the host: the mount supervisor's CPU, its helpers'.

Starts a private eci engine (ECI on) on a temporary state dir, runs a ``--privileged --cpus 0.1
--pids-limit 32`` busybox container running ``tests/security/mountspam.c`` (16 threads, each
mounting and unmounting a tmpfs as fast as it is answered), lets it run 2 s, then measures for
SECONDS: the supervisor's own CPU and its reaped children's (the helpers, with their children)
from /proc/<pid>/stat, the container's cpuacct.usage, and the helpers at work (its children
that are not keepers, sampled every 50 ms). Prints the figures and tears the engine down.

Helpers charged to the container are throttled by its quota: their CPU shows in both the
supervisor's children's time and the container's cpuacct, and that stays near 0.1 core.

    .venv/bin/python bench/supervisor_cpu.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from proxy import engine  # bench/proxy.py
from start import _run  # bench/start.py

from eci.engine.layout import EngineLayout
from eci.host.cgroups import cpu_seconds_of
from eci.host.processes import children_of, cpu_seconds
from eci.runtime.confine.sysinfo import cgroup_paths

MOUNT_SPAM = Path(__file__).parent.parent / "tests" / "security" / "mountspam.c"
LIMITS = ("--privileged", "--cpus", "0.1", "--pids-limit", "32")


def docker(layout: EngineLayout, *args: str) -> str:
    return _run("docker", "-H", f"unix://{layout.user_socket}", *args).strip()


def measure(layout: EngineLayout, seconds: float, binary: Path) -> dict[str, float]:
    options = ("-v", f"{binary.parent}:/spam-bin:ro")
    container = docker(layout, "run", "-d", *LIMITS, *options, "busybox", "/spam-bin/mountspam")
    try:
        pid = int(docker(layout, "inspect", "--format", "{{.State.Pid}}", container))
        cpuacct = cgroup_paths(pid)["cpuacct"]
        supervisor = int((layout.supervisor_dir / "pid").read_text())
        keepers = layout.supervisor_dir / "keepers"
        time.sleep(2)
        own_before, helpers_before = cpu_seconds(supervisor)
        container_before = cpu_seconds_of(cpuacct)
        start = time.monotonic()
        most, seen = 0, set()
        while time.monotonic() - start < seconds:
            kept = {int(p.name.split(".")[0]) for p in keepers.iterdir()}
            helpers = children_of(supervisor) - kept
            most, seen = max(most, len(helpers)), seen | helpers
            time.sleep(0.05)
        elapsed = time.monotonic() - start
        own_after, helpers_after = cpu_seconds(supervisor)
        return {
            "seconds": elapsed,
            "supervisor": own_after - own_before,
            "helpers": helpers_after - helpers_before,
            "container": cpu_seconds_of(cpuacct) - container_before,
            "most_at_once": most,
            "helpers_seen": len(seen),
        }
    finally:
        rm = ["docker", "-H", f"unix://{layout.user_socket}", "rm", "-f", container]
        subprocess.run(rm, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20.0, help="measurement window")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="eci-bench-spam-") as tmp:
        directory = Path(tmp)
        directory.chmod(0o755)
        binary = directory / "mountspam"
        _run("gcc", "-static", "-O2", "-pthread", "-o", str(binary), str(MOUNT_SPAM))
        with engine() as layout:
            f = measure(layout, args.seconds, binary)
    window = f["seconds"]
    print(f"mount spam, 16 threads, --cpus 0.1, for {window:.1f} s:")
    for name, key in (
        ("supervisor's own CPU", "supervisor"),
        ("its helpers' CPU", "helpers"),
        ("container's cpuacct", "container"),
    ):
        print(f"  {name:22} {f[key]:6.2f} s  ({f[key] / window:.3f} core)")
    print(f"  helpers at once (max)  {f['most_at_once']:6.0f}")
    print(f"  helpers seen (50 ms)   {f['helpers_seen']:6.0f}")
    python = sys.version.split()[0]
    machine = f"{os.cpu_count()} cores, kernel {platform.release()}, Python {python}"
    print(f"{machine}; load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
