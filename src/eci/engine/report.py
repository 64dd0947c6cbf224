"""What `eci status` and `eci down` report: typed, so the CLI renders fields, not dict keys.

`StatusReport.to_json()` is the `eci status --json` document; its keys are a public interface
(scripts and the tests read them) and stay as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class DownReport:
    """What `eci down` stopped, killed, detached and released."""

    stopped: list[str] = field(default_factory=list)
    killed_container_processes: int = 0
    stray_shims: int = 0
    detached_mounts: list[str] = field(default_factory=list)
    bridge_removed: bool = False
    released_ranges: int = 0


@dataclass(frozen=True)
class ProcessStatus:
    """One recorded daemon: its pid, and whether it is still the process eci started."""

    pid: int
    alive: bool


@dataclass(frozen=True)
class RecordedEngine:
    """What engine.json says of an engine `eci up` started (absent before the first start)."""

    eci_enabled: bool
    #: the effective settings it applied, as `EffectiveSettings.to_json()` wrote them
    settings: dict[str, Any]
    #: the mirror's host:port; None: the engine runs no registry
    registry: str | None
    bridge: str
    bridge_cidr: str
    started_at: str
    log_dir: Path

    @property
    def eci_source(self) -> str:
        """Where the applied ECI setting came from, in words (admin file, user file, default)."""
        return str(self.settings["enhancedContainerIsolation"]["source"]["description"])

    @property
    def eci_applied(self) -> bool:
        """The ECI value of the applied settings."""
        return bool(self.settings["enhancedContainerIsolation"]["value"])


@dataclass(frozen=True)
class StatusReport:
    """One engine as `eci status` shows it; `running` only if every recorded part is alive."""

    state_dir: Path
    run_dir: Path
    running: bool
    #: name -> path, in the order they are shown
    sockets: dict[str, Path]
    #: name -> process, as engine.json lists them
    processes: dict[str, ProcessStatus]
    recorded: RecordedEngine | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "stateDir": str(self.state_dir),
            "runDir": str(self.run_dir),
            "running": self.running,
            "sockets": {name: str(path) for name, path in self.sockets.items()},
            "processes": {
                name: {"pid": p.pid, "alive": p.alive} for name, p in self.processes.items()
            },
        }
        if self.recorded is not None:
            data.update(
                eciEnabled=self.recorded.eci_enabled,
                settings=self.recorded.settings,
                registry=self.recorded.registry,
                bridge={"name": self.recorded.bridge, "cidr": self.recorded.bridge_cidr},
                startedAt=self.recorded.started_at,
                logs=str(self.recorded.log_dir),
            )
        return data
