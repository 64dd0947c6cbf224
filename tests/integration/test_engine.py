"""The embedded engine through the real Docker CLI, as the unprivileged test user."""

from __future__ import annotations

import grp
import json
import os
import stat
import subprocess

import pytest
from tests.support import DOCKER_CLIS, TEST_USER, EngineHandle, run

from eci.engine.components import COMPONENTS
from eci.images.catalog import TEST_IMAGES

pytestmark = pytest.mark.engine


@pytest.mark.parametrize("cli", DOCKER_CLIS)
def test_busybox_echo_ok_as_unprivileged_user(engine: EngineHandle, cli: str) -> None:
    result = engine.docker("run", "--rm", "busybox", "echo", "ok", cli=cli)
    assert result.stdout == "ok\n"


def test_docker_info_shows_sysbox_runc_as_default_runtime(engine: EngineHandle) -> None:
    info = engine.docker("info").stdout
    assert "Default Runtime: sysbox-runc" in info


def test_new_container_records_sysbox_runc(engine: EngineHandle) -> None:
    cid = engine.docker("create", "busybox", "true").stdout.strip()
    try:
        runtime = engine.docker("inspect", "--format", "{{.HostConfig.Runtime}}", cid).stdout
        assert runtime.strip() == "sysbox-runc"
    finally:
        engine.docker("rm", "-f", cid)


def test_status_names_every_socket_and_live_pid(engine: EngineHandle) -> None:
    status = engine.status()
    assert status["running"] is True
    processes = status["processes"]
    assert isinstance(processes, dict)
    assert set(processes) == {c.name for c in COMPONENTS}
    assert {"runtime-server", "mount-supervisor", "lxcfs", "dockerd", "proxy"} <= set(processes)
    for name, proc in processes.items():
        assert proc["alive"], name
        assert os.path.exists(f"/proc/{proc['pid']}"), name
    sockets = status["sockets"]
    assert isinstance(sockets, dict)
    assert sockets["user"] == str(engine.layout.user_socket)
    assert sockets["dockerdRaw"] == str(engine.layout.raw_socket)


def test_env_prints_docker_host(engine: EngineHandle) -> None:
    assert engine.eci("env").stdout == f"export DOCKER_HOST={engine.docker_host}\n"


def test_raw_socket_is_root_only(engine: EngineHandle) -> None:
    raw = engine.layout.raw_socket
    st = raw.stat()
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == 0
    assert stat.S_IMODE(engine.layout.private_dir.stat().st_mode) == 0o700
    # control: root reaches dockerd on the raw socket ...
    assert run(["docker", "-H", f"unix://{raw}", "version"]).returncode == 0
    # ... the unprivileged user in group docker does not.
    denied = run(
        ["runuser", "-u", TEST_USER, "--", "docker", "-H", f"unix://{raw}", "version"], check=False
    )
    assert denied.returncode != 0
    assert "permission denied" in denied.stderr.lower()


def test_user_socket_is_group_docker_0660(engine: EngineHandle) -> None:
    st = engine.layout.user_socket.stat()
    assert stat.S_IMODE(st.st_mode) == 0o660
    assert (st.st_uid, grp.getgrgid(st.st_gid).gr_name) == (0, "docker")


def test_user_outside_group_docker_is_refused(engine: EngineHandle) -> None:
    result = run(
        ["runuser", "-u", "nobody", "--", "docker", "-H", engine.docker_host, "version"],
        check=False,
    )
    assert result.returncode != 0
    assert "permission denied" in result.stderr.lower()


def test_up_is_idempotent(engine: EngineHandle) -> None:
    before = engine.status()["processes"]
    result = engine.eci("up", "--admin-settings", str(engine.admin_settings))
    assert "already running" in result.stdout
    assert engine.status()["processes"] == before


def test_images_carry_registry_digests(engine: EngineHandle) -> None:
    for name, repo in (("busybox:latest", "busybox"), ("docker:cli", "docker")):
        raw = engine.docker("image", "inspect", name).stdout
        digests = json.loads(raw)[0]["RepoDigests"]
        assert any(d.startswith(f"{repo}@sha256:") for d in digests), digests


def test_images_rerun_is_up_to_date(engine: EngineHandle) -> None:
    result = engine.eci("images")
    assert result.stdout.count("up to date") == len(TEST_IMAGES), result.stdout


def test_docker_cli_image_holds_a_docker_client(engine: EngineHandle) -> None:
    result = engine.docker("run", "--rm", "docker:cli", "docker", "--version")
    assert result.stdout.startswith("Docker version")


def test_engine_keeps_off_the_hosts_docker0_and_iptables(engine: EngineHandle) -> None:
    links = json.loads(run(["ip", "-j", "link", "show"]).stdout)
    names = {link["ifname"] for link in links}
    assert engine.layout.bridge_name in names
    config = json.loads(engine.layout.dockerd_config.read_text())
    assert config["bridge"] == engine.layout.bridge_name
    assert config["iptables"] is False
    assert config["ip-forward"] is False
    nat = subprocess.run(["iptables", "-t", "nat", "-S"], capture_output=True, text=True)
    assert engine.layout.bridge_name not in nat.stdout


def test_verify_passes_built_rows_and_marks_the_rest_not_yet(engine: EngineHandle) -> None:
    rows = json.loads(engine.eci("verify", "--json").stdout)
    by_capability: dict[str, set[str]] = {}
    for row in rows:
        by_capability.setdefault(row["capability"], set()).add(row["status"])
    assert by_capability.pop("engine") == {"pass"}
    assert by_capability.pop("runtime") == {"pass"}
    assert by_capability.pop("proxy") == {"pass"}
    assert by_capability.pop("socket-mount") == {"pass"}
    assert by_capability.pop("confinement") == {"pass"}
    assert all(statuses == {"not yet"} for statuses in by_capability.values())
    uid_map = next(r for r in rows if "uid_map" in r["check"])
    assert uid_map["observed"].startswith("0 ")
    assert uid_map["observed"].endswith(" 65536")
    socket_rows = [r["observed"] for r in rows if r["capability"] == "socket-mount"]
    assert socket_rows == [
        "refused (not allowlisted)",  # the session's settings list no image
        "no imageList entries to impersonate: every socket mount refused",
    ]


def test_output_of_short_lived_containers_is_never_lost(engine: EngineHandle) -> None:
    """Regression: the user socket once dropped ~3% of `docker run` outputs (a half-closed
    connection's task was garbage-collected mid-stream)."""
    outputs = [engine.docker("run", "--rm", "busybox", "echo", "ok").stdout for _ in range(40)]
    assert outputs == ["ok\n"] * 40
