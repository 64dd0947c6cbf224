"""Granting the Docker socket to a container whose image is allowed.

The container never gets the real socket. Its socket mounts are redirected to a socket of its
own (``eci.contract.grants.grant_path``) that the proxy serves with every ECI rule plus the
admin's ``commandList``; the token is recorded as a container label so the proxy finds the
socket's owner again after a restart, and removes the socket with its container. The image is
pinned to the id that was checked, so a retag between the check and the create cannot swap it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from eci.contract.labels import GRANT_LABEL
from eci.dockerapi.gojson import GoObject
from eci.policy.imagelist import ImageMatch
from eci.policy.labels import set_label


@dataclass(frozen=True, slots=True)
class Grant:
    """A socket the proxy must serve for the container about to be created."""

    token: str
    image: str  # as the create named it
    match: ImageMatch


def _redirect_bind(spec: str, is_socket: Callable[[str], bool], source: str) -> str:
    host, sep, rest = spec.partition(":")
    return f"{source}:{rest}" if sep and host.startswith("/") and is_socket(host) else spec


def redirect_sockets(
    body: GoObject, host_configs: list[GoObject], is_socket: Callable[[str], bool], source: str
) -> int:
    """Point every bind of a Docker socket in ``body`` (``Binds``, bind ``Mounts``, legacy
    ``Volumes`` keys) at ``source``, in place; returns how many were redirected. Sockets
    reached any other way (a volume's driver options) are left for the checks to refuse."""
    redirected = 0
    volumes = body.obj("Volumes")
    for key in list(volumes or ()):
        if volumes is not None and (new := _redirect_bind(key, is_socket, source)) != key:
            volumes[new] = volumes.pop(key)
            redirected += 1
    for hc in host_configs:
        binds = hc.array("Binds")
        if binds:
            new_binds = [_redirect_bind(b, is_socket, source) for b in binds]
            redirected += sum(a != b for a, b in zip(binds, new_binds, strict=True))
            hc.set_field("Binds", new_binds)
        for mount in hc.array("Mounts"):
            if (
                isinstance(mount, GoObject)
                and mount.string("Type").lower() == "bind"
                and is_socket(mount.string("Source"))
            ):
                mount.set_field("Source", source)
                redirected += 1
    return redirected


def pin_image(body: GoObject, image_id: str, token: str) -> None:
    """Create from exactly the checked image, and label the container with its grant."""
    body.set_field("Image", image_id)
    set_label(body, GRANT_LABEL, token)
