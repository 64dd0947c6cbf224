"""What the policy is configured with: ECI on/off, the runtime name, the protected host paths."""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from eci.errors import PolicyDenied, restricted_mount_message, socket_mount_message
from eci.policy.imagelist import ImageList
from eci.settings.model import CommandList

#: Spellings of one directory: a path under either is checked under both.
PATH_ALIASES: tuple[tuple[str, str], ...] = (("/var/run", "/run"), ("/var/lock", "/run/lock"))

#: The host's own Docker and containerd, always protected, whatever engine eci runs.
SYSTEM_RESTRICTED: tuple[str, ...] = (
    "/etc/docker",
    "/var/lib/docker",
    "/etc/containerd",
    "/var/lib/containerd",
    "/run/containerd",
    "/run/docker",
    "/etc/eci",
    "/var/lib/eci",
    "/run/eci",
)
SYSTEM_DOCKER_SOCKETS: tuple[str, ...] = ("/run/docker.sock",)


def _parts(path: str) -> tuple[str, ...]:
    return tuple(p for p in path.split("/") if p)


def within(path: str, root: str) -> bool:
    """Whole-component containment: ``/procfoo`` is not within ``/proc``."""
    inner, outer = _parts(path), _parts(root)
    return inner[: len(outer)] == outer


def spellings(path: str) -> set[str]:
    """``path`` normalized, plus its other spellings through ``PATH_ALIASES``."""
    norm = posixpath.normpath("/" + path)
    norm = "/" + norm.lstrip("/")
    found = {norm}
    for a, b in PATH_ALIASES:
        for src, dst in ((a, b), (b, a)):
            if within(norm, src):
                rest = _parts(norm)[len(_parts(src)) :]
                found.add("/".join((dst, *rest)))
    return found


@dataclass(frozen=True, slots=True)
class HostPaths:
    """Host paths no container may mount: ``restricted`` (with everything below and above
    them: mounting ``/`` or ``/var`` would expose them too) and the Docker sockets (any
    spelling of the daemon's socket: the socket-mount rule, with the socket error text)."""

    restricted: tuple[str, ...] = SYSTEM_RESTRICTED
    docker_sockets: tuple[str, ...] = SYSTEM_DOCKER_SOCKETS
    #: every spelling of the sockets, and of everything protected: derived once, here
    socket_spellings: frozenset[str] = field(init=False)
    protected: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        sockets = frozenset(s for sock in self.docker_sockets for s in spellings(sock))
        restricted = frozenset(s for p in self.restricted for s in spellings(p))
        object.__setattr__(self, "socket_spellings", sockets)
        object.__setattr__(self, "protected", restricted | sockets)

    def is_socket(self, given: str, resolved: str | None) -> bool:
        """Host path ``given`` (``resolved`` on the host) is a Docker socket."""
        candidates = spellings(given) | (spellings(resolved) if resolved else set())
        return bool(candidates & self.socket_spellings)

    def binds_socket(self, paths: Iterable[str], real_paths: Mapping[str, str]) -> bool:
        """One of the host ``paths`` (resolved through ``real_paths``) is a Docker socket."""
        return any(self.is_socket(p, real_paths.get(p)) for p in paths)

    def check(self, given: str, resolved: str | None, image: str) -> None:
        """Raise ``PolicyDenied`` if mounting host path ``given`` (``resolved`` on the host)
        would expose a protected path. ``image`` names the container's image for the
        socket-mount message."""
        candidates = spellings(given) | (spellings(resolved) if resolved else set())
        if candidates & self.socket_spellings:
            raise PolicyDenied("docker-socket-mount", socket_mount_message(image))
        for path in candidates:
            for root in self.protected:
                if within(path, root) or within(root, path):
                    raise PolicyDenied("restricted-mount", restricted_mount_message(given))


@dataclass(frozen=True, slots=True)
class PolicyContext:
    """The policy's configuration, built by the proxy from the engine layout and settings."""

    eci_enabled: bool
    runtime: str = "sysbox-runc"
    host_paths: HostPaths = field(default_factory=HostPaths)
    #: images whose containers may have a Docker socket (a filtered one, served by the proxy)
    image_list: ImageList = field(default_factory=ImageList)
    #: what a container may do through its granted socket
    command_list: CommandList = field(default_factory=CommandList)
    #: where granted sockets live on the host ("": no socket can be granted)
    grants_dir: str = ""
    #: only a container's creator (or root) may act on it (see ``policy.ownership``)
    container_ownership: bool = True
