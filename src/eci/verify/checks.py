"""The verification table of design.md §1 as code, run against a live engine.

Each row names the capability that delivers it. Rows whose capability is not built yet are
reported as "not yet" without running anything: a row can only pass by being checked.
"""

from __future__ import annotations

import grp
import json
import stat
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import docker
import docker.errors

from eci.dockerapi.imageref import parse_reference
from eci.engine.layout import RUNTIME_NAME, EngineLayout
from eci.errors import host_namespaces_message, restricted_mount_message, socket_mount_message
from eci.policy.imagelist import ImageList

#: Capabilities that exist in this build. Each later capability adds its name here together with
#: the `run` functions of its rows.
BUILT_FEATURES = frozenset({"engine", "runtime", "proxy", "socket-mount", "confinement"})

SOCKET = "/var/run/docker.sock"
SOCKET_BIND = {SOCKET: {"bind": SOCKET, "mode": "rw"}}
CLI_IMAGE = "docker:cli"
RETAG = "eci-verify-retag"  # the tag given for a ``name:*`` entry


class Status(Enum):
    PASS = "pass"
    FAIL = "FAIL"
    NOT_YET = "not yet"


@dataclass(frozen=True)
class Target:
    """What a check runs against: a client for the user-facing socket and the engine's layout."""

    client: docker.DockerClient
    layout: EngineLayout
    eci_enabled: bool
    image: str = "busybox:latest"


@dataclass(frozen=True)
class Outcome:
    passed: bool
    observed: str


@dataclass(frozen=True)
class Check:
    name: str
    feature: str
    with_eci: str
    without: str
    run: Callable[[Target], Outcome] | None = None


@dataclass(frozen=True)
class Result:
    check: Check
    status: Status
    observed: str


def _runtime_of_new_container(t: Target) -> Outcome:
    container = t.client.containers.create(t.image, ["true"])
    try:
        runtime = container.attrs["HostConfig"]["Runtime"]
    finally:
        container.remove(force=True)
    expected = RUNTIME_NAME if t.eci_enabled else "runc"
    return Outcome(runtime == expected, runtime)


def _default_runtime(t: Target) -> Outcome:
    runtime = t.client.info().get("DefaultRuntime", "?")
    expected = RUNTIME_NAME if t.eci_enabled else "runc"
    return Outcome(runtime == expected, f"Default Runtime: {runtime}")


def _mode(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


def _raw_socket_private(t: Target) -> Outcome:
    sock_mode, sock_uid, _ = _mode(t.layout.raw_socket)
    dir_mode, dir_uid, _ = _mode(t.layout.private_dir)
    ok = sock_uid == 0 and dir_uid == 0 and sock_mode & 0o077 == 0 and dir_mode & 0o077 == 0
    return Outcome(ok, f"socket {sock_mode:04o} uid {sock_uid}, dir {dir_mode:04o}")


def _user_socket_group(t: Target) -> Outcome:
    mode, uid, gid = _mode(t.layout.user_socket)
    group = grp.getgrgid(gid).gr_name
    return Outcome(mode == 0o660 and uid == 0 and group == "docker", f"{mode:04o} root:{group}")


def _parse_map(text: str) -> tuple[int, int, int]:
    inside, outside, count = (int(x) for x in text.split())
    return inside, outside, count


def _uid_map(t: Target) -> Outcome:
    text = t.client.containers.run(t.image, ["cat", "/proc/self/uid_map"], remove=True).decode()
    inside, outside, count = _parse_map(text)
    if t.eci_enabled:
        return Outcome(inside == 0 and outside > 0 and count == 65536, " ".join(text.split()))
    return Outcome((inside, outside) == (0, 0), " ".join(text.split()))


def _two_containers(t: Target) -> Outcome:
    containers = [t.client.containers.run(t.image, ["sleep", "60"], detach=True) for _ in range(2)]
    try:
        bases = []
        for c in containers:
            _, out = c.exec_run(["cat", "/proc/self/uid_map"])
            bases.append(_parse_map(out.decode())[1])
    finally:
        for c in containers:
            c.remove(force=True)
    observed = f"{bases[0]} and {bases[1]}"
    if t.eci_enabled:
        return Outcome(abs(bases[0] - bases[1]) >= 65536, observed)
    return Outcome(bases[0] == bases[1], observed)


def _ro_bind_remount(t: Target) -> Outcome:
    out = (
        t.client.containers.run(
            t.image,
            ["sh", "-c", "mount -o remount,rw /ro 2>&1 && echo REMOUNTED || echo refused"],
            privileged=True,
            volumes={"/usr": {"bind": "/ro", "mode": "ro"}},
            remove=True,
        )
        .decode()
        .strip()
        .splitlines()[-1]
    )
    return Outcome(out == "refused" if t.eci_enabled else out == "REMOUNTED", out)


def _host_uptime() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


def _uptime(t: Target) -> Outcome:
    """A new container's uptime: its own (seconds) with ECI, the host's without."""
    out = t.client.containers.run(t.image, ["cat", "/proc/uptime"], remove=True).decode()
    inside, host = float(out.split()[0]), _host_uptime()
    observed = f"{inside:.0f} s (host {host:.0f} s)"
    if t.eci_enabled:
        return Outcome(inside < 60 and (host < 120 or inside < host - 60), observed)
    return Outcome(abs(inside - host) < 5, observed)


def _first_disk() -> tuple[int, int] | None:
    """major, minor of the host's first whole disk, from /proc/partitions."""
    for line in Path("/proc/partitions").read_text().splitlines()[2:]:
        major, minor, _, name = line.split()
        if not name[-1].isdigit() or name.startswith(("loop", "ram", "nvme", "mmcblk")):
            return int(major), int(minor)
    return None


#: each probe prints NAME:W when the host's kernel let it through, NAME:R when refused;
#: core_pattern is written back with its own value (nothing changes on the host)
_KERNEL_PROBES = (
    'cp=$(cat /proc/sys/kernel/core_pattern); (echo "$cp" > /proc/sys/kernel/core_pattern) '
    "2>/dev/null && echo core:W || echo core:R; "
    "echo junk > /tmp/m.ko; insmod /tmp/m.ko 2>&1 | grep -qi 'format' && echo module:W "
    "|| echo module:R; "
    "mknod /tmp/disk b {major} {minor} 2>/dev/null && head -c 512 /tmp/disk >/dev/null "
    "2>&1 && echo disk:W || echo disk:R"
)


def _privileged_kernel(t: Target) -> Outcome:
    """In --privileged: the host's sysctls, module loading and disks are out of reach."""
    major, minor = _first_disk() or (8, 0)
    script = _KERNEL_PROBES.format(major=major, minor=minor)
    out = t.client.containers.run(t.image, ["sh", "-c", script], privileged=True, remove=True)
    results = dict(line.split(":") for line in out.decode().split())
    observed = " ".join(f"{k} {'written' if v == 'W' else 'refused'}" for k, v in results.items())
    if t.eci_enabled:
        return Outcome(set(results.values()) == {"R"}, observed)
    return Outcome(results.get("core") == "W", observed)


def _refusal(t: Target, image: str | None = None, **options: object) -> str | None:
    """The daemon's error message if creating a container with ``options`` is refused."""
    try:
        t.client.containers.run(image or t.image, ["true"], remove=True, **options)
    except docker.errors.APIError as exc:
        return str(exc.explanation)
    return None


def _host_namespaces(t: Target) -> Outcome:
    refusals = [_refusal(t, pid_mode="host"), _refusal(t, network_mode="host")]
    observed = "; ".join(r or "ran" for r in refusals)
    if t.eci_enabled:
        expected = [host_namespaces_message(["pid"]), host_namespaces_message(["network"])]
        return Outcome(refusals == expected, observed)
    return Outcome(refusals == [None, None], observed)


def _runc_and_userns_host_ignored(t: Target) -> Outcome:
    out = t.client.containers.run(
        t.image, ["cat", "/proc/self/uid_map"], runtime="runc", userns_mode="host", remove=True
    )
    observed = " ".join(out.decode().split())
    host_map = observed == "0 0 4294967295"
    return Outcome(not host_map if t.eci_enabled else host_map, observed)


def _restricted_mount(t: Target) -> Outcome:
    refusal = _refusal(t, volumes={"/etc/docker": {"bind": "/x", "mode": "ro"}})
    if t.eci_enabled:
        return Outcome(refusal == restricted_mount_message("/etc/docker"), refusal or "ran")
    return Outcome(refusal is None, refusal or "ran")


def _image_list(t: Target) -> ImageList:
    """The ``imageList`` of the settings the engine runs with."""
    section = json.loads(t.layout.settings_snapshot.read_text())["enhancedContainerIsolation"]
    images = section["dockerSocketMount"]["imageList"]
    return ImageList.from_settings(images["images"], images["allowDerivedImages"])


def _socket_message(image: str) -> str:
    return socket_mount_message(parse_reference(image).repository)


def _socket_mount(t: Target) -> Outcome:
    """Refused with the socket text, or (allowlisted) a filtered socket of its own that
    answers ``docker version``; without ECI, the real socket."""
    command = ["docker", "version", "--format", "{{.Server.Version}}"]
    try:
        container = t.client.containers.create(CLI_IMAGE, command, volumes=SOCKET_BIND)
    except docker.errors.APIError as exc:
        refusal = str(exc.explanation)
        ok = t.eci_enabled and refusal == _socket_message(CLI_IMAGE)
        return Outcome(ok, "refused (not allowlisted)" if ok else refusal)
    try:
        container.start()
        status = container.wait()["StatusCode"]
        version = container.logs(stdout=True, stderr=False).decode().strip()
        source = Path(container.attrs["HostConfig"]["Binds"][0].split(":")[0])
    finally:
        container.remove(force=True)
    ran = status == 0 and version != ""
    if not t.eci_enabled:
        return Outcome(ran, f"runs: docker version {version}" if ran else f"exit {status}")
    filtered = source.parent.parent == t.layout.grants_dir
    if ran and filtered and _image_list(t).entries:
        return Outcome(True, f"allowlisted: filtered socket, docker version {version}")
    return Outcome(False, f"ran with {source}: exit {status}, {version!r}")


def _retag_refused(t: Target) -> Outcome:
    """An image named like an allowlisted one (a tag is just a name) is still refused."""
    if not t.eci_enabled:
        return Outcome(True, "- (ECI off)")
    entries = _image_list(t).entries
    if any(e.repository is None for e in entries):
        return Outcome(True, 'WARNING: imageList has "*": every image may mount the socket')
    names = [(e.repository, e.tag or RETAG) for e in entries if e.repository and not e.digest]
    if not names:
        refusal = _refusal(t, volumes=SOCKET_BIND)
        ok = refusal == _socket_message(t.image)
        observed = "no imageList entries to impersonate: every socket mount refused"
        return Outcome(ok, observed if ok else refusal or "ran")
    repository, tag = names[0]
    name = f"{repository}:{tag}"
    try:
        previous: str | None = t.client.images.get(name).id
    except docker.errors.ImageNotFound:
        previous = None
    t.client.images.get(t.image).tag(repository, tag)
    try:
        refusal = _refusal(t, image=name, volumes=SOCKET_BIND)
    finally:
        if previous is None:
            t.client.images.remove(name)
        else:
            t.client.api.tag(previous, repository, tag)
    ok = refusal == socket_mount_message(repository)
    return Outcome(ok, f"{t.image} tagged {name}: refused" if ok else refusal or "ran")


def _echo_ok(t: Target) -> Outcome:
    out = t.client.containers.run(t.image, ["echo", "ok"], remove=True)
    text = out.decode().strip()
    return Outcome(text == "ok", text)


TABLE: tuple[Check, ...] = (
    Check("docker run --rm busybox echo ok", "engine", "ok", "ok", _echo_ok),
    Check(
        "docker run --rm busybox cat /proc/self/uid_map",
        "runtime",
        "0 100000 65536 (base varies, exclusive)",
        "0 0 4294967295",
        _uid_map,
    ),
    Check(
        "docker inspect --format '{{.HostConfig.Runtime}}'",
        "engine",
        RUNTIME_NAME,
        "runc",
        _runtime_of_new_container,
    ),
    Check("docker info: Default Runtime", "engine", RUNTIME_NAME, "runc", _default_runtime),
    Check(
        "two running containers",
        "runtime",
        "different, non-overlapping ranges",
        "same",
        _two_containers,
    ),
    Check(
        "docker run --pid=host / --network=host",
        "proxy",
        "refused with ECI texts",
        "runs",
        _host_namespaces,
    ),
    Check(
        "docker run --runtime=runc --userns=host",
        "proxy",
        "still isolated",
        "obeyed",
        _runc_and_userns_host_ignored,
    ),
    Check(
        "-v /etc/docker:/x (restricted host mount)",
        "proxy",
        "refused",
        "runs",
        _restricted_mount,
    ),
    Check(
        "-v /var/run/docker.sock:/var/run/docker.sock docker:cli",
        "socket-mount",
        "refused unless allowlisted",
        "runs",
        _socket_mount,
    ),
    Check(
        "retag a denied image to an allowlisted name, mount socket",
        "socket-mount",
        "refused",
        "-",
        _retag_refused,
    ),
    Check(
        "--privileged then mount -o remount,rw of a ro bind",
        "runtime",
        "refused",
        "allowed",
        _ro_bind_remount,
    ),
    Check("cat /proc/uptime", "confinement", "container's uptime", "host's", _uptime),
    Check(
        "privileged: core_pattern write, module load, mknod+read host disk",
        "confinement",
        "fails",
        "works",
        _privileged_kernel,
    ),
    Check(
        "raw dockerd socket is root-only", "engine", "0600 in a 0700 dir", "-", _raw_socket_private
    ),
    Check("user-facing socket", "engine", "0660 root:docker", "-", _user_socket_group),
)


def run_check(check: Check, target: Target) -> Result:
    if check.feature not in BUILT_FEATURES or check.run is None:
        return Result(check, Status.NOT_YET, f"({check.feature})")
    try:
        outcome = check.run(target)
    except (docker.errors.DockerException, OSError, KeyError) as exc:
        return Result(check, Status.FAIL, f"error: {exc}")
    return Result(check, Status.PASS if outcome.passed else Status.FAIL, outcome.observed)


def run_table(target: Target) -> list[Result]:
    return [run_check(check, target) for check in TABLE]
