"""The mount supervisor and lxcfs as parts of the engine, through the real Docker CLI: no
container starts without them (fail closed), a supervisor restart keeps every running
container's rules (calls made meanwhile wait), `eci up` brings either back alone, and a
container's listeners, keepers and rules go with it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support import EngineHandle, eventually

from eci.engine.state import load_state

pytestmark = pytest.mark.engine


def pid_of(engine: EngineHandle, component: str) -> int:
    state = load_state(engine.layout.state_file)
    assert state is not None
    return state.processes[component].pid


def restart(engine: EngineHandle) -> str:
    result = engine.eci("up", "--admin-settings", str(engine.admin_settings))
    return result.stdout + result.stderr


@pytest.fixture
def privileged(engine: EngineHandle) -> Iterator[str]:
    """A running --privileged container whose init, on SIGUSR1, tries to unmount the lxcfs
    view of /proc/meminfo and records the outcome in /done (a signal needs no supervisor,
    unlike a `docker exec`)."""
    script = "trap 'umount /proc/meminfo 2>/err; echo $? > /done' USR1; while :; do sleep 0.2; done"
    container = engine.docker("run", "-d", "--privileged", "busybox", "sh", "-c", script)
    yield container.stdout.strip()
    engine.docker("rm", "-f", container.stdout.strip(), check=False)


def test_a_supervisor_restart_keeps_the_running_containers_rules(
    engine: EngineHandle, privileged: str
) -> None:
    init = engine.docker("inspect", "-f", "{{.State.Pid}}", privileged).stdout.strip()
    done = Path(f"/proc/{init}/root/done")
    assert any((engine.layout.supervisor_dir / "keepers").iterdir())
    os.kill(pid_of(engine, "mount-supervisor"), signal.SIGKILL)
    try:
        # the call is made while nobody supervises: it waits, it is not let through
        engine.docker("kill", "--signal", "USR1", privileged)
        time.sleep(1)
        assert not done.exists()
    finally:
        assert "restarted mount-supervisor" in restart(engine)
    assert eventually(lambda: done.exists() and done.read_text().strip() != "")
    assert done.read_text().strip() != "0"
    assert "Operation not permitted" in Path(f"/proc/{init}/root/err").read_text()
    # the lxcfs view is still there, and a workload's own mounts work through the new one
    assert "MemTotal" in engine.docker("exec", privileged, "cat", "/proc/meminfo").stdout
    own = "mkdir -p /m && mount -t tmpfs t /m && umount /m && echo mounted"
    assert engine.docker("exec", privileged, "sh", "-c", own).stdout.strip() == "mounted"


def test_without_the_supervisor_no_container_starts(engine: EngineHandle) -> None:
    os.kill(pid_of(engine, "mount-supervisor"), signal.SIGKILL)
    try:
        refused = engine.docker("run", "--rm", "busybox", "true", check=False)
        assert refused.returncode != 0
        assert "listener" in refused.stderr or "connect" in refused.stderr
        privileged = engine.docker("run", "--rm", "--privileged", "busybox", "true", check=False)
        assert privileged.returncode != 0
    finally:
        assert "restarted mount-supervisor" in restart(engine)
    assert engine.docker("run", "--rm", "busybox", "echo", "ok").stdout.strip() == "ok"


def test_without_lxcfs_no_container_starts_and_eci_up_brings_it_back(
    engine: EngineHandle,
) -> None:
    running = engine.docker("run", "-d", "busybox", "sleep", "300").stdout.strip()
    os.kill(pid_of(engine, "lxcfs"), signal.SIGKILL)
    try:
        refused = engine.docker("run", "--rm", "busybox", "true", check=False)
        assert refused.returncode != 0
        assert "lxcfs does not answer" in refused.stderr
        # a running container reads an error from its old view, never the host's numbers
        stale = engine.docker("exec", running, "cat", "/proc/meminfo", check=False)
        assert stale.returncode != 0
    finally:
        assert "restarted lxcfs" in restart(engine)
        engine.docker("rm", "-f", running, check=False)
    total = engine.docker("run", "--rm", "--memory", "64m", "busybox", "free", "-m").stdout
    assert total.splitlines()[1].split()[1] == "64"


def test_a_removed_container_leaves_no_keeper_or_rules(engine: EngineHandle) -> None:
    container = engine.docker("run", "-d", "--privileged", "busybox", "sleep", "300").stdout
    container = container.strip()
    engine.docker("exec", container, "true")  # a second listener: the exec's
    rules = engine.layout.supervisor_dir / "containers" / container
    assert (rules / "protected").is_file()
    keepers = {
        p.name: p.read_text().split() for p in (engine.layout.supervisor_dir / "keepers").iterdir()
    }
    ours = [int(pid) for pid, (cid, _, _) in keepers.items() if cid == container]
    assert ours
    engine.docker("rm", "-f", container)
    assert eventually(lambda: not rules.exists())
    assert eventually(lambda: not any(Path(f"/proc/{pid}").exists() for pid in ours))


INNER = (
    "cat /proc/self/uid_map; head -1 /proc/meminfo; stat -c %F /proc/keys; "
    "umount /proc/meminfo 2>&1; echo inner-done"
)


@pytest.fixture
def nested_bundle(tmp_path: Path) -> Path:
    """A runc bundle whose rootfs is the host's static busybox (what DinD's runc would run)."""
    rootfs = tmp_path / "bundle" / "rootfs"
    for sub in ("bin", "proc", "sys", "dev", "tmp"):
        (rootfs / sub).mkdir(parents=True)
    shutil.copy("/bin/busybox", rootfs / "bin" / "busybox")
    (rootfs / "bin" / "sh").symlink_to("busybox")
    tmp_path.chmod(0o755)
    return tmp_path


@pytest.mark.parametrize("rootless", [False, True], ids=["like-dind", "nested-userns"])
def test_a_nested_runc_runs_inside_a_privileged_container(
    engine: EngineHandle, nested_bundle: Path, rootless: bool
) -> None:
    """Docker-in-Docker's runc mounts /proc, masks paths, pivots and detaches the old root,
    all through the supervisor; the inner /proc is masked and virtualized as well."""
    bundle = nested_bundle / "bundle"
    subprocess.run(["runc", "spec", *(["--rootless"] if rootless else [])], cwd=bundle, check=True)
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"].update(terminal=False, args=["/bin/sh", "-c", INNER])
    (bundle / "config.json").write_text(json.dumps(spec))
    host_libs = [f"-v/{d}:/{d}:ro" for d in ("usr", "lib", "lib64") if Path(f"/{d}").is_dir()]
    result = engine.docker(
        "run", "--rm", "--privileged", "--memory", "200m", *host_libs,
        "-v", f"{nested_bundle}:/nest", "busybox", "sh", "-c",
        "mkdir -p /run && cd /nest/bundle && runc --root /tmp/runc run inner",
    )  # fmt: skip
    lines = result.stdout.splitlines()
    assert lines[-1] == "inner-done"
    assert "MemTotal:         204800 kB" in lines
    assert "character special file" in lines
    assert "umount: can't unmount /proc/meminfo: Operation not permitted" in lines
