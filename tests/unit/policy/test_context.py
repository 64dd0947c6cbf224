"""`within`, `spellings` and `HostPaths.check`: which host paths a container may mount.

Restricted paths are protected with everything below them (`/etc/docker/daemon.json`) and
above them (`/`, `/var`: mounting those exposes them too), compared by whole components
(`/etc/dockerfile` is not `/etc/docker`), in every spelling (`//`, `..`, `/var/run` ↔ `/run`)
and as resolved on the host (a symlink to `/etc/docker` is `/etc/docker`). The Docker socket
in any spelling gets the socket-mount message; its directory gets the restricted one.
"""

from __future__ import annotations

import pytest

from eci.errors import PolicyDenied, restricted_mount_message, socket_mount_message
from eci.policy import HostPaths
from eci.policy.context import SYSTEM_RESTRICTED, PolicyContext, spellings, within

IMAGE = "docker.io/library/docker"


@pytest.mark.parametrize(
    ("path", "root", "inside"),
    [
        ("/proc", "/proc", True),
        ("/proc/1", "/proc", True),
        ("/procfoo", "/proc", False),
        ("/pro", "/proc", False),
        ("/etc/dockerfile", "/etc/docker", False),
        ("/etc/docker/daemon.json", "/etc/docker", True),
        ("//etc///docker/", "/etc/docker", True),
        ("/anything", "/", True),
        ("/", "/", True),
        ("/", "/etc", False),
        ("/etc", "/etc/docker", False),
    ],
    ids=lambda v: str(v),
)
def test_within_compares_whole_components(path: str, root: str, inside: bool) -> None:
    assert within(path, root) is inside


@pytest.mark.parametrize(
    ("path", "found"),
    [
        ("/var/run/docker.sock", {"/var/run/docker.sock", "/run/docker.sock"}),
        ("/run/docker.sock", {"/var/run/docker.sock", "/run/docker.sock"}),
        ("/var/run/../run/docker.sock", {"/var/run/docker.sock", "/run/docker.sock"}),
        ("//var//run//docker.sock/", {"/var/run/docker.sock", "/run/docker.sock"}),
        ("/run", {"/var/run", "/run"}),
        ("/var/lock/x", {"/var/lock/x", "/run/lock/x"}),
        ("/run/lock", {"/var/lock", "/run/lock", "/var/run/lock"}),
        ("/etc/docker", {"/etc/docker"}),
        ("/var/runner", {"/var/runner"}),
        ("/", {"/"}),
        ("relative/x", {"/relative/x"}),
    ],
    ids=lambda v: str(v) if isinstance(v, str) else "",
)
def test_spellings(path: str, found: set[str]) -> None:
    assert spellings(path) == found


PATHS = HostPaths()

REFUSED = [
    # (given, resolved on the host, message)
    ("/var/run/docker.sock", None, socket_mount_message(IMAGE)),
    ("/run/docker.sock", None, socket_mount_message(IMAGE)),
    ("/var/run/../run/docker.sock", None, socket_mount_message(IMAGE)),
    ("//run//docker.sock/", None, socket_mount_message(IMAGE)),
    ("/var/./run/docker.sock", None, socket_mount_message(IMAGE)),
    ("/home/u/sock", "/run/docker.sock", socket_mount_message(IMAGE)),
    ("/home/u/sock", "/var/run/docker.sock", socket_mount_message(IMAGE)),
    ("/etc/docker", None, restricted_mount_message("/etc/docker")),
    ("/etc/docker/daemon.json", None, restricted_mount_message("/etc/docker/daemon.json")),
    ("/etc/docker/", None, restricted_mount_message("/etc/docker/")),
    ("/etc//docker", None, restricted_mount_message("/etc//docker")),
    ("/etc/x/../docker", None, restricted_mount_message("/etc/x/../docker")),
    ("/var/lib/docker", None, restricted_mount_message("/var/lib/docker")),
    ("/var/lib/docker/volumes", None, restricted_mount_message("/var/lib/docker/volumes")),
    ("/var/run/docker", None, restricted_mount_message("/var/run/docker")),
    (
        "/run/containerd/containerd.sock",
        None,
        restricted_mount_message("/run/containerd/containerd.sock"),
    ),
    ("/var/run/containerd", None, restricted_mount_message("/var/run/containerd")),
    ("/etc/eci", None, restricted_mount_message("/etc/eci")),
    ("/run/eci/docker.sock", None, restricted_mount_message("/run/eci/docker.sock")),
    ("/home/u/link", "/etc/docker", restricted_mount_message("/home/u/link")),
    (
        "/home/u/link/daemon.json",
        "/etc/docker/daemon.json",
        restricted_mount_message("/home/u/link/daemon.json"),
    ),
    ("/home/u/rootlink", "/", restricted_mount_message("/home/u/rootlink")),
    # ancestors of a restricted path or of the socket
    ("/", None, restricted_mount_message("/")),
    ("/var", None, restricted_mount_message("/var")),
    ("/var/lib", None, restricted_mount_message("/var/lib")),
    ("/etc", None, restricted_mount_message("/etc")),
    ("/run", None, restricted_mount_message("/run")),
    ("/var/run", None, restricted_mount_message("/var/run")),
    ("/var/run/", None, restricted_mount_message("/var/run/")),
    ("//", None, restricted_mount_message("//")),
    ("/tmp/..", None, restricted_mount_message("/tmp/..")),
]


@pytest.mark.parametrize(
    ("given", "resolved", "message"), REFUSED, ids=[f"{g}->{r}" for g, r, _ in REFUSED]
)
def test_protected_paths_are_refused_in_every_spelling(
    given: str, resolved: str | None, message: str
) -> None:
    with pytest.raises(PolicyDenied) as raised:
        PATHS.check(given, resolved, IMAGE)
    assert str(raised.value) == message
    assert raised.value.status == 403
    expected_rule = "docker-socket-mount" if "socket" in message else "restricted-mount"
    assert raised.value.rule == expected_rule


ALLOWED = [
    ("/procfoo", None),
    ("/proc", None),
    ("/etc/dockerfile", None),
    ("/etc/docker2", None),
    ("/etc/containerd-old", None),
    ("/var/lib/dockerd", None),
    ("/var/lib/docker.bak", None),
    ("/run/docker.sockets", None),
    ("/run/docker.sock.d", None),
    ("/var/run2", None),
    ("/home/u/x", None),
    ("/home/u/x", "/home/u/x"),
    ("/home/u/link-to-tmp", "/tmp/data"),
    ("/tmp", None),
    ("/srv/data", None),
    ("/run/user/1000", None),
    ("/var/log", None),
]


@pytest.mark.parametrize(("given", "resolved"), ALLOWED, ids=[g for g, _ in ALLOWED])
def test_other_paths_are_allowed(given: str, resolved: str | None) -> None:
    PATHS.check(given, resolved, IMAGE)


def test_extra_restricted_paths_and_sockets() -> None:
    """The proxy adds the engine's own state and socket; they are protected the same way."""
    paths = HostPaths(
        restricted=(*SYSTEM_RESTRICTED, "/srv/eci-state"),
        docker_sockets=("/run/docker.sock", "/srv/eci-run/docker.sock"),
    )
    with pytest.raises(PolicyDenied, match="docker socket mount denied"):
        paths.check("/srv/eci-run/docker.sock", None, IMAGE)
    with pytest.raises(PolicyDenied, match="restricted host mount"):
        paths.check("/srv/eci-run", None, IMAGE)
    with pytest.raises(PolicyDenied, match="restricted host mount"):
        paths.check("/srv/eci-state/docker", None, IMAGE)
    with pytest.raises(PolicyDenied, match="restricted host mount"):
        paths.check("/srv", None, IMAGE)
    paths.check("/srv/eci-statefoo", None, IMAGE)


def test_policy_context_defaults() -> None:
    ctx = PolicyContext(eci_enabled=True)
    assert ctx.runtime == "sysbox-runc"
    assert ctx.host_paths == HostPaths()
    assert "/etc/docker" in ctx.host_paths.restricted
    assert "/run/docker.sock" in ctx.host_paths.docker_sockets
