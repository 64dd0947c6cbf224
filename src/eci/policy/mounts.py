"""Every way a request can put a host path into a container, read from a parsed body.

Binds (``src:dst[:opts]``), ``Mounts[]`` (type bind, or a volume whose inline driver options
bind a host ``device``), legacy ``Volumes`` keys written like binds, named volumes whose
local driver binds a host path, and ``VolumesFrom`` a container holding such a mount.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from eci.dockerapi.gojson import GoObject, InvalidBody


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


def device_option(options: GoObject | None) -> str | None:
    """The host path a local-driver volume binds (``device``), if its options name one."""
    if options is None:
        return None
    devices = [v for k, v in options.items() if k.lower() == "device"]
    for device in devices:
        if not isinstance(device, str):
            raise InvalidBody("volume option 'device' must be a string")
    return next((d for d in devices if d.startswith("/")), None)


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
            device = device_option(driver.obj("Options")) if driver else None
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
