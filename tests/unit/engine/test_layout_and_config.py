"""Engine layout and rendered configs: private paths, no shared host resources."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from eci.engine.components import components
from eci.engine.config import (
    EngineOptions,
    containerd_config,
    dockerd_config,
    registry_config,
    registry_writer_config,
    runtime_config,
)
from eci.engine.layout import DEFAULT_RUN_DIR, DEFAULT_STATE_DIR, EngineLayout
from eci.engine.state import EngineState
from eci.host.mounts import is_under

LAYOUTS = [EngineLayout.for_state_dir(None), EngineLayout.for_state_dir(Path("/tmp/eci-x"))]


def _options(enabled: bool = True, registry: str | None = "127.0.0.1:723") -> EngineOptions:
    return EngineOptions(
        eci_enabled=enabled,
        runtime_path=Path("/opt/eci/eci-runtime"),
        registry_address=registry,
        bridge_cidr="10.213.4.1/24",
    )


def test_default_layout_uses_system_dirs() -> None:
    layout = EngineLayout.for_state_dir(None)
    assert (layout.state_dir, layout.run_dir) == (DEFAULT_STATE_DIR, DEFAULT_RUN_DIR)
    assert layout.bridge_name == "eci0"
    assert layout.user_socket == Path("/run/eci/docker.sock")


def test_other_state_dirs_get_distinct_host_names() -> None:
    a = EngineLayout.for_state_dir(Path("/tmp/a"))
    b = EngineLayout.for_state_dir(Path("/tmp/b"))
    assert a.bridge_name != b.bridge_name
    assert a.containerd_namespace != b.containerd_namespace
    assert len(a.bridge_name.encode()) <= 15  # IFNAMSIZ - 1
    assert a.run_dir == Path("/tmp/a/run")


@pytest.mark.parametrize("layout", LAYOUTS, ids=["default", "custom"])
def test_raw_sockets_live_in_the_private_dir(layout: EngineLayout) -> None:
    for path in (layout.raw_socket, layout.containerd_socket, layout.docker_exec_root):
        assert is_under(str(path), layout.private_dir)
    assert not is_under(str(layout.user_socket), layout.private_dir)


@pytest.mark.parametrize("layout", LAYOUTS, ids=["default", "custom"])
def test_dockerd_config_keeps_to_private_paths(layout: EngineLayout) -> None:
    config = json.loads(dockerd_config(layout, _options()))
    assert config["hosts"] == [f"unix://{layout.raw_socket}"]
    assert config["containerd"] == str(layout.containerd_socket)
    for key in ("data-root", "exec-root", "pidfile"):
        path = config[key]
        assert is_under(path, layout.state_dir) or is_under(path, layout.run_dir), key
    assert config["bridge"] == layout.bridge_name
    assert (config["iptables"], config["ip-forward"], config["ip-masq"]) == (False, False, False)
    assert config["registry-mirrors"] == ["http://127.0.0.1:723"]


def test_without_a_registry_dockerd_has_no_mirror() -> None:
    config = json.loads(dockerd_config(LAYOUTS[1], _options(registry=None)))
    assert "registry-mirrors" not in config


@pytest.mark.parametrize(("enabled", "default"), [(True, "sysbox-runc"), (False, "runc")])
def test_default_runtime_follows_eci_setting(enabled: bool, default: str) -> None:
    config = json.loads(dockerd_config(LAYOUTS[1], _options(enabled)))
    assert config["default-runtime"] == default
    assert config["runtimes"] == {"sysbox-runc": {"path": str(LAYOUTS[1].runtime_launcher)}}


def test_runtime_config_names_private_dirs_and_the_shared_range_store() -> None:
    layout = LAYOUTS[1]
    config = dict(line.split("=", 1) for line in runtime_config(layout).splitlines())
    assert config["dockerDataRoot"] == str(layout.docker_data_root)
    assert is_under(config["runtimeDir"], layout.private_dir)
    assert is_under(config["rootfsDir"], layout.run_dir)
    assert config["rangesDir"] == "/var/lib/eci/ranges"  # one pool, one store, all engines
    assert config["auditLog"] == str(layout.audit_log)
    assert "rangesPerUser" not in config  # the runtime's default


def test_runtime_config_carries_the_admins_range_cap() -> None:
    config = dict(line.split("=", 1) for line in runtime_config(LAYOUTS[1], 7).splitlines())
    assert config["rangesPerUser"] == "7"


def test_containerd_config_is_private_and_parses() -> None:
    layout = LAYOUTS[1]
    config = tomllib.loads(containerd_config(layout))
    assert config["root"] == str(layout.containerd_root)
    assert config["state"] == str(layout.containerd_state)
    assert config["grpc"]["address"] == str(layout.containerd_socket)
    assert config["debug"]["address"] == ""
    assert "io.containerd.grpc.v1.cri" in config["disabled_plugins"]


def _yaml(text: str) -> dict[str, str]:
    """The registry config's leaves as dotted paths (it is two-space-indented YAML)."""
    leaves, path = {}, []
    for line in text.splitlines()[1:]:
        depth = (len(line) - len(line.lstrip())) // 2
        key, _, value = line.strip().partition(":")
        path[depth:] = [key]
        if value.strip():
            leaves[".".join(path)] = value.strip()
    return leaves


@pytest.mark.parametrize("layout", LAYOUTS, ids=["default", "custom"])
def test_the_mirror_is_read_only_on_loopback(layout: EngineLayout) -> None:
    config = _yaml(registry_config(layout, "127.0.0.1:723"))
    assert config == {
        "log.level": "warn",
        "storage.filesystem.rootdirectory": f'"{layout.registry_root}"',
        "storage.delete.enabled": "false",
        "storage.maintenance.uploadpurging.enabled": "false",
        "storage.maintenance.readonly.enabled": "true",
        "http.addr": '"127.0.0.1:723"',
    }


@pytest.mark.parametrize("layout", LAYOUTS, ids=["default", "custom"])
def test_the_writer_listens_on_a_socket_in_the_private_dir(layout: EngineLayout) -> None:
    config = _yaml(registry_writer_config(layout))
    assert config == {
        "log.level": "warn",
        "storage.filesystem.rootdirectory": f'"{layout.registry_root}"',
        "storage.delete.enabled": "false",
        "http.net": "unix",
        "http.addr": f'"{layout.registry_writer_socket}"',
    }
    assert is_under(str(layout.registry_writer_socket), layout.private_dir)


def test_the_registry_runs_only_in_an_engine_started_with_it() -> None:
    state = EngineState(
        state_dir="/tmp/eci-x", run_dir="/tmp/eci-x/run", eci_enabled=True, settings={}
    )
    without = [c.name for c in components(state)]
    state.registry_address = "127.0.0.1:723"
    with_registry = [c.name for c in components(state)]
    assert [n for n in with_registry if n not in without] == ["registry-writer", "registry"]
    assert with_registry.index("registry") < with_registry.index("dockerd")  # its mirror first
