"""One error hierarchy for eci.

Every error carries a message that shows the offending value and says what to do about it.
The CLI prints ``str(error)`` and exits non-zero; nothing else is needed to explain a failure.
"""

from __future__ import annotations

import posixpath

from eci.contract.devices import ALLOWED_DEVICE_PATHS


class EciError(Exception):
    """Base of every error eci raises on purpose; anything else is a bug."""


class SettingsError(EciError):
    """A settings file is missing, unreadable or invalid.

    Raised before anything is started, so fixing the file and re-running is always safe.
    """

    def __init__(self, file: str, json_path: str, reason: str) -> None:
        self.file = file
        self.json_path = json_path
        self.reason = reason
        super().__init__(f"{file}: {json_path}: {reason}")


class EngineError(EciError):
    """The embedded engine could not be started, stopped or reached.

    The message names the component and where its log is; ``eci down`` is always safe to run.
    """


class ImageBuildError(EciError):
    """A test image could not be built, pushed or pulled back."""


class RegistryRefused(ImageBuildError):
    """A registry answered a request with an error status (``status``); the message names the
    registry, the request and its answer. Nothing was tagged: the request is safe to repeat."""

    def __init__(self, where: str, request: str, status: int, answer: str) -> None:
        self.status = status
        super().__init__(f"the registry at {where} refused {request}: {status} {answer}")


class RuntimeShimError(EciError):
    """The runtime shim refused or failed to prepare a container; nothing of it is left.

    The message reaches the Docker CLI as `OCI runtime create failed: <message>`.
    """


class SpecRefused(RuntimeShimError):
    """The OCI spec asks for something that would break isolation (e.g. a host namespace)."""


class RangePoolExhausted(RuntimeShimError):
    """Every user-id range of eci's pool is held by a live container.

    Remove containers, or give the `eci` user a larger range in /etc/subuid and /etc/subgid.
    """


class RangeCapReached(RuntimeShimError):
    """The user who asked for a container already holds as many id ranges as one user may
    (`idRangesPerUser` in the admin settings), so one user cannot take the whole pool.

    Remove some of that user's containers, or raise the limit.
    """


class SyscallRefused(EciError):
    """A call of a container that the mount supervisor answers (mount(2), umount2(2), sysinfo(2))
    was refused, or failed, in its helper: the call is answered with ``errno``.

    Raised only inside a helper and turned into its exit code (the caller's errno) at its top,
    so it never reaches a user. ``why`` is logged by the supervisor; it is empty for what the
    kernel would answer itself (a caller without CAP_SYS_ADMIN, a bad pointer).
    """

    def __init__(self, errno: int, why: str = "") -> None:
        self.errno = errno
        self.why = why
        super().__init__(f"errno {errno}: {why}" if why else f"errno {errno}")


class PolicyDenied(EciError):
    """The proxy refused a Docker API request; ``str(error)`` is what the Docker CLI prints.

    ``rule`` names the policy rule (for the audit log); ``status`` is the HTTP status sent.
    To allow what was refused, an admin changes ``admin-settings.json`` (or turns ECI off).
    """

    def __init__(self, rule: str, message: str, status: int = 403) -> None:
        self.rule = rule
        self.status = status
        super().__init__(message)


#: Why a host namespace cannot be shared (the wording of Docker ECI / sysbox).
USERNS_REASON = "(because they use the linux user-namespace for isolation)"


def host_namespaces_message(kinds: list[str]) -> str:
    """The sysbox/Docker ECI text for sharing host namespaces; ``network`` has its own."""
    if "network" in kinds:
        return f"sysbox containers can't share a network namespace with the host {USERNS_REASON}"
    return (
        f"sysbox containers can't share namespaces [{' '.join(kinds)}] with the host "
        f"{USERNS_REASON}"
    )


def proc_workdir_refusal(cwd: str) -> str | None:
    """Why a working directory is refused, or None: one under /proc (or /dev/fd, a link to
    /proc/self/fd) reaches the runtime's own fds (CVE-2024-21626: `-w /proc/self/fd/N` was a
    host directory runc leaked). Checked by the proxy (create, exec) and again by the runtime
    shim (the image's WorkingDir too)."""
    path = "/" + posixpath.normpath("/" + cwd).lstrip("/")  # normpath keeps a leading "//"
    if any(path == p or path.startswith(p + "/") for p in ("/proc", "/dev/fd")):
        return (
            f"working directory {cwd} is under /proc or /dev/fd: not allowed in enhanced "
            "container "
            "isolation (it can reach the runtime's own file descriptors)"
        )
    return None


def device_message(device: str) -> str:
    return (
        f"{ECI_PREFIX}host device {device} is not allowed: containers get no host devices "
        f"(allowed: {', '.join(sorted(ALLOWED_DEVICE_PATHS))})"
    )


ECI_PREFIX = "enhanced container isolation: "


def restricted_mount_message(path: str) -> str:
    return f"{ECI_PREFIX}can't mount {path} because it's configured as a restricted host mount"


def socket_mount_message(image: str) -> str:
    return (
        f'{ECI_PREFIX}docker socket mount denied for container with image "{image}"; image is '
        "not in the allowed list; if you wish to allow it, configure the docker socket image "
        "list in the Docker admin settings."
    )


def command_blocked_message(target: str) -> str:
    """Docker ECI's text for a request the socket's command list blocks; ``target`` is the
    request target as the client sent it (version prefix and query included)."""
    return (
        f'{ECI_PREFIX}docker command "{target}" is blocked; if you wish to allow it, '
        "configure the docker socket command list in the Docker admin settings."
    )


def owner_message(kind: str, name: str, owner: int, action: str) -> str:
    """Why another user may not ``action`` (exec into, start, mount, ...) a container or a
    volume (``kind``): it belongs to uid ``owner``, the user whose request created it."""
    return (
        f"{ECI_PREFIX}{kind} {name!r} belongs to uid {owner}: only its owner or root "
        f"may {action} it (an admin can turn containerOwnership off)"
    )


def build_remote_message(remote: str, reason: str) -> str:
    """Why a classic build's ``remote=`` context is refused: dockerd would fetch it from the
    host itself, as root."""
    return (
        f"{ECI_PREFIX}build context {remote!r} is refused: {reason}; dockerd would fetch it "
        "from the host's own network as root; send the context from the client instead"
    )
