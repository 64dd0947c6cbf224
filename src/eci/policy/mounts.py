"""Every way a request can put a host path into a container, read from a parsed body.

Binds (``src:dst[:opts]``), ``Mounts[]`` (type bind, or a volume whose inline driver options
bind a host ``device``), legacy ``Volumes`` keys written like binds, named volumes whose
local driver binds a host path, and ``VolumesFrom`` a container holding such a mount.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from eci.dockerapi.gojson import GoObject, InvalidBody
from eci.errors import ECI_PREFIX, PolicyDenied


@dataclass(frozen=True, slots=True)
class HostMount:
    """One reference to a host resource: an absolute host ``path`` or a named ``volume``."""

    path: str | None = None
    volume: str | None = None


def _obj(value: Any, what: str) -> GoObject:
    if not isinstance(value, GoObject):
        raise InvalidBody(f"{what} must be an object")
    return value


def _strings(values: list[Any], what: str) -> list[str]:
    if not all(isinstance(v, str) for v in values):
        raise InvalidBody(f"{what} must be a list of strings")
    return values


def from_bind(spec: str) -> HostMount | None:
    """``/src:/dst[:opts]`` → host path; ``name:/dst`` → named volume; ``/dst`` → neither."""
    source, sep, _ = spec.partition(":")
    if not sep:
        return None
    if source.startswith("/"):
        return HostMount(path=source)
    return HostMount(volume=source) if source else None


NETWORK_FILESYSTEMS = ("nfs", "nfs4", "cifs", "smb3")
#: mount options that name host paths or files other than ``device``
PATH_OPTIONS = ("lowerdir", "upperdir", "workdir", "loop")


def _refuse_volume(reason: str) -> PolicyDenied:
    return PolicyDenied("volume-options", f"{ECI_PREFIX}local volume options refused: {reason}")


def local_volume_source(options: Mapping[str, Any] | None) -> str | None:
    """The host path a local-driver volume mounts, from its options (``type``, ``o``,
    ``device``). Options that reach host paths any other way are refused: a relative
    ``device`` (dockerd resolves it against its own working directory), overlay directories in
    ``o``, loop files, and filesystem types that mount a host block device. tmpfs and network
    filesystems are fine."""
    if not options:
        return None
    folded: dict[str, str] = {}
    for key, value in options.items():
        if not isinstance(value, str):
            raise InvalidBody(f"volume option {key!r} must be a string")
        if key.lower() in folded:
            raise InvalidBody(f"volume option {key!r} is given twice")
        folded[key.lower()] = value
    kind = folded.get("type", "").strip().lower()
    device = folded.get("device", "")
    flags = {item.split("=", 1)[0].strip().lower() for item in folded.get("o", "").split(",")}
    if flags & set(PATH_OPTIONS):
        raise _refuse_volume(f"mount options {sorted(flags & set(PATH_OPTIONS))} name host paths")
    if kind == "tmpfs" or (not device and kind in ("", "none")):
        return None
    if kind in NETWORK_FILESYSTEMS and not device.startswith("/"):
        return None
    if kind in ("", "none") or flags & {"bind", "rbind"}:
        if not device.startswith("/"):
            raise _refuse_volume(f"device {device!r} is not an absolute host path")
        return device
    raise _refuse_volume(f"type {kind!r} would mount a host device ({device!r})")


def from_mounts(mounts: list[Any]) -> Iterator[HostMount]:
    """``HostConfig.Mounts`` and swarm ``ContainerSpec.Mounts`` entries."""
    for entry in mounts:
        mount = _obj(entry, "Mounts entry")
        kind = mount.string("Type").lower()
        source = mount.string("Source")
        if kind == "bind":
            yield HostMount(path=source or "/")
        elif kind in ("volume", ""):
            options = mount.obj("VolumeOptions")
            driver = options.obj("DriverConfig") if options else None
            local = driver is not None and driver.string("Name").lower() in ("", "local")
            device = local_volume_source(driver.obj("Options")) if driver and local else None
            if device:
                yield HostMount(path=device)
            elif source:
                yield (
                    HostMount(volume=source)
                    if not source.startswith("/")
                    else HostMount(path=source)
                )


def host_mounts(body: GoObject, host_configs: list[GoObject]) -> Iterator[HostMount]:
    """Every host mount a container-create body asks for."""
    volumes = body.field("Volumes")
    if isinstance(volumes, GoObject):
        for key in volumes:
            if ":" in key and (found := from_bind(key)):
                yield found
    elif volumes is not None:
        raise InvalidBody("Volumes must be an object")
    for hc in host_configs:
        for spec in _strings(hc.array("Binds"), "Binds"):
            if found := from_bind(spec):
                yield found
        yield from from_mounts(hc.array("Mounts"))


def volumes_from(host_configs: list[GoObject]) -> list[str]:
    """Containers named in ``VolumesFrom`` (``name[:ro|rw]``)."""
    return [
        spec.partition(":")[0]
        for hc in host_configs
        for spec in _strings(hc.array("VolumesFrom"), "VolumesFrom")
    ]
