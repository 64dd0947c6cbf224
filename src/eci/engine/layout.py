"""Where every file of one embedded engine lives.

One engine = one state directory. Everything eci creates (data, sockets, pidfiles, logs, generated
configs) is a path derived here, so `eci down` can clean up by exact path and two engines (the
admin's and a test session's) never share a file, a socket, a bridge or a containerd namespace.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

DEFAULT_STATE_DIR = Path("/var/lib/eci")
DEFAULT_RUN_DIR = Path("/run/eci")

#: Id-range allocations, shared by every engine on the host: ranges come from one pool (the
#: `eci` user's /etc/subuid entry), so two engines must never hand out the same range.
RANGES_DIR = DEFAULT_STATE_DIR / "ranges"

#: The name users and `docker info` see for the eci runtime (Docker Desktop ECI's name for it).
RUNTIME_NAME = "sysbox-runc"


@dataclass(frozen=True)
class EngineLayout:
    """All paths and names of one embedded engine, derived from its state directory."""

    state_dir: Path
    run_dir: Path

    @classmethod
    def for_state_dir(cls, state_dir: Path | None) -> EngineLayout:
        """The default engine: /var/lib/eci + /run/eci; any other keeps its run dir inside."""
        if state_dir is None or Path(state_dir) == DEFAULT_STATE_DIR:
            return cls(DEFAULT_STATE_DIR, DEFAULT_RUN_DIR)
        state = Path(state_dir).absolute()
        return cls(state, state / "run")

    @property
    def is_default(self) -> bool:
        return self.state_dir == DEFAULT_STATE_DIR

    @property
    def tag(self) -> str:
        """Short stable id of this engine, used in names that must be unique on the host."""
        if self.is_default:
            return "eci"
        return "eci" + hashlib.sha256(str(self.state_dir).encode()).hexdigest()[:6]

    # --- state (persistent) ---
    @property
    def state_file(self) -> Path:
        return self.state_dir / "engine.json"

    @property
    def config_dir(self) -> Path:
        return self.state_dir / "config"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "log"

    @property
    def docker_data_root(self) -> Path:
        return self.state_dir / "docker"

    @property
    def containerd_root(self) -> Path:
        return self.state_dir / "containerd"

    @property
    def registry_root(self) -> Path:
        return self.state_dir / "registry"

    @property
    def dockerd_config(self) -> Path:
        return self.config_dir / "daemon.json"

    @property
    def containerd_config(self) -> Path:
        return self.config_dir / "containerd.toml"

    @property
    def registry_config(self) -> Path:
        """The mirror dockerd pulls from: read-only, on a loopback port."""
        return self.config_dir / "registry.yml"

    @property
    def registry_writer_config(self) -> Path:
        """The same storage written through a root-only unix socket (`eci images`)."""
        return self.config_dir / "registry-writer.yml"

    @property
    def settings_snapshot(self) -> Path:
        """Effective settings as applied by `eci up`, readable by the stdlib-only runtime shim."""
        return self.config_dir / "effective-settings.json"

    @property
    def runtime_config(self) -> Path:
        return self.config_dir / "runtime.conf"

    @property
    def runtime_launcher(self) -> Path:
        """What dockerd runs as the eci runtime: the engine's values, then the dispatcher."""
        return self.config_dir / "sysbox-runc"

    @property
    def audit_log(self) -> Path:
        """JSON lines, one per request the proxy refused (root only)."""
        return self.log_dir / "audit.jsonl"

    def log_file(self, component: str) -> Path:
        return self.log_dir / f"{component}.log"

    # --- run (volatile) ---
    @property
    def private_dir(self) -> Path:
        """Root-only (0700) directory holding everything users must never reach."""
        return self.run_dir / "private"

    @property
    def raw_socket(self) -> Path:
        """dockerd's own socket: root only. Users reach the engine through the proxy socket."""
        return self.private_dir / "dockerd.sock"

    @property
    def user_socket(self) -> Path:
        """The socket users point DOCKER_HOST at (mode 0660, group docker)."""
        return self.run_dir / "docker.sock"

    @property
    def registry_writer_socket(self) -> Path:
        """The only way to write into the engine's registry: root-only, dockerd never uses it."""
        return self.private_dir / "registry-writer.sock"

    @property
    def grants_dir(self) -> Path:
        """The filtered Docker sockets the proxy serves to containers granted one."""
        return self.private_dir / "grants"

    @property
    def containerd_state(self) -> Path:
        return self.private_dir / "containerd"

    @property
    def containerd_socket(self) -> Path:
        return self.containerd_state / "containerd.sock"

    @property
    def docker_exec_root(self) -> Path:
        return self.private_dir / "exec"

    @property
    def runtime_dir(self) -> Path:
        """Per-container staged mounts of the runtime shim (never inside dockerd's dirs)."""
        return self.private_dir / "runtime"

    @property
    def runtime_server_dir(self) -> Path:
        """The runtime server's request FIFO, pid file and reply FIFOs (root only)."""
        return self.private_dir / "runtime-server"

    @property
    def supervisor_dir(self) -> Path:
        """The mount supervisor's socket (runc's seccomp listenerPath), keepers and rules."""
        return self.private_dir / "supervisor"

    @property
    def lxcfs_dir(self) -> Path:
        """lxcfs's mount. runc opens bind sources as host root (and hands container root the
        fds), so it is private: no host user asks lxcfs anything."""
        return self.private_dir / "lxcfs"

    @property
    def rootfs_dir(self) -> Path:
        """Containers' root filesystems as runc reaches them, as container root: passed by
        all (0711), listed by none; `<id>/` is root:<that container root's gid> 0710 and
        holds the mount at `<id>/root`."""
        return self.run_dir / "rootfs"

    def pid_file(self, component: str) -> Path:
        return self.private_dir / f"{component}.pid"

    # --- names on the host ---
    @property
    def bridge_name(self) -> str:
        """Linux interface names are at most 15 bytes: 'eci0' or 'eci' + 6 hex + '0'."""
        return f"{self.tag}0"

    @property
    def containerd_namespace(self) -> str:
        return self.tag

    @property
    def cgroup_parent(self) -> str:
        return f"/{self.tag}"
