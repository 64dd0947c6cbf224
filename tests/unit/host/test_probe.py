"""Where the engine's registry may listen: a loopback port only root can bind."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from eci.host import probe


def _sysctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, start: int) -> None:
    path = tmp_path / "ip_unprivileged_port_start"
    path.write_text(f"{start}\n")
    monkeypatch.setattr(probe, "UNPRIVILEGED_PORT_START", path)


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="binding a port below 1024 needs root")
def test_a_free_port_below_the_unprivileged_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _sysctl(tmp_path, monkeypatch, 1024)
    port = probe.free_root_only_loopback_port()
    assert port in probe.ROOT_ONLY_PORTS
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # free indeed


@pytest.mark.parametrize("start", [0, 500, probe.ROOT_ONLY_PORTS.start])
def test_none_when_any_user_may_bind_those_ports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, start: int
) -> None:
    _sysctl(tmp_path, monkeypatch, start)
    assert probe.free_root_only_loopback_port() is None
