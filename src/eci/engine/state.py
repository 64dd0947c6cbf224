"""engine.json: what `eci up` started, so `status` and `down` act on exactly that."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eci.host.processes import ProcessId

STATE_VERSION = 1


@dataclass
class EngineState:
    """Everything `eci down` needs to undo `eci up`, and `eci status` needs to report."""

    state_dir: str
    run_dir: str
    eci_enabled: bool
    settings: dict[str, Any]
    bridge: str = ""
    bridge_cidr: str = ""
    registry_address: str = ""
    started_at: str = ""
    processes: dict[str, ProcessId] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "stateDir": self.state_dir,
            "runDir": self.run_dir,
            "eciEnabled": self.eci_enabled,
            "settings": self.settings,
            "bridge": self.bridge,
            "bridgeCidr": self.bridge_cidr,
            "registryAddress": self.registry_address,
            "startedAt": self.started_at,
            "processes": {k: v.to_json() for k, v in self.processes.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EngineState:
        return cls(
            state_dir=data["stateDir"],
            run_dir=data["runDir"],
            eci_enabled=bool(data["eciEnabled"]),
            settings=dict(data["settings"]),
            bridge=data.get("bridge", ""),
            bridge_cidr=data.get("bridgeCidr", ""),
            registry_address=data.get("registryAddress", ""),
            started_at=data.get("startedAt", ""),
            processes={k: ProcessId.from_json(v) for k, v in data["processes"].items()},
        )


def load_state(path: Path) -> EngineState | None:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    if data.get("version") != STATE_VERSION:
        return None
    return EngineState.from_json(data)


def save_state(path: Path, state: EngineState, gid: int | None = None) -> None:
    """Readable by root and group `gid` (docker: `eci settings show` compares it)."""
    write_atomic(path, json.dumps(state.to_json(), indent=2, sort_keys=True) + "\n", 0o640, gid)


def write_atomic(path: Path, text: str, mode: int = 0o644, gid: int | None = None) -> None:
    """Write-then-rename so readers never see half a file, even if we crash mid-write; owned
    by group `gid` if given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    if gid is not None:
        os.chown(tmp, 0, gid)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
