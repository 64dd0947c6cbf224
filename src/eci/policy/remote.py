"""Classic-builder remote contexts (``POST /build?remote=URL``) that point at the host itself.

dockerd fetches a remote context itself, as root, from the host's network namespace: over
HTTP(S) for a URL, with ``git clone`` for a git remote. Pointed at the host's loopback, its
link-local addresses (a cloud metadata service) or any address of its own interfaces, it
would read services that trust local callers and hand what they answered to the user as an
image. The host name is read the way dockerd reads the remote (``remotecontext.Detect``,
``urlutil``), resolved by the proxy through the host's resolver as dockerd's would, and
every address it resolves to is checked.

Not covered (docs/proxy.md): an HTTP redirect from an allowed host to the host's own
address, a name that resolves differently when dockerd fetches, and git submodules; they
are followed by dockerd after the proxy has decided.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from eci.dockerapi.request import ApiRequest
from eci.errors import PolicyDenied, build_remote_message
from eci.policy.facts import Facts

#: What ``urlutil.IsURL`` and ``IsGitURL`` of dockerd 20.10 recognize (case-sensitive).
URL_PREFIXES = ("http://", "https://", "git://")
GIT_SCP_PREFIX = "git@"
GITHUB_PREFIX = "github.com/"
#: A host name or address as the policy accepts it: anything else (percent-escapes, which
#: Go decodes and Python does not, backslashes, spaces) is refused rather than guessed.
HOST = re.compile(r"[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\]")


class UnreadableRemote(ValueError):
    """The remote's host cannot be read unambiguously."""


def remotes(request: ApiRequest) -> tuple[str, ...]:
    """Every ``remote`` the build names (dockerd reads the first; all are checked)."""
    return tuple(v for v in request.target.query_values("remote") if v)


def remote_host(remote: str) -> str | None:
    """The host dockerd would fetch ``remote`` from; None for a remote it does not fetch
    (the client's own context, or text dockerd refuses)."""
    if remote.startswith(URL_PREFIXES):
        netloc = urlsplit(remote).netloc
        host = netloc.rpartition("@")[2]  # after the userinfo; then without the port
        host = host[: host.find("]") + 1] if host.startswith("[") else host.partition(":")[0]
    elif remote.startswith(GIT_SCP_PREFIX):
        host = re.split(r"[:/]", remote[len(GIT_SCP_PREFIX) :], maxsplit=1)[0]
    elif remote.startswith(GITHUB_PREFIX):
        return "github.com"
    else:
        return None
    if not host or not HOST.fullmatch(host):
        raise UnreadableRemote(f"its host {host!r} cannot be read unambiguously")
    return host.strip("[]").lower()


def hosts(request: ApiRequest) -> frozenset[str]:
    """The host names the build's remotes need resolved (unreadable ones are refused later)."""
    found = set()
    for remote in remotes(request):
        try:
            host = remote_host(remote)
        except UnreadableRemote:
            continue
        if host is not None:
            found.add(host)
    return frozenset(found)


def _why_refused(addresses: Iterable[str], local: frozenset[str]) -> str | None:
    for text in addresses:
        address = ipaddress.ip_address(text.partition("%")[0])  # fe80::1%eth0
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if address.is_loopback:
            return f"{address} is a loopback address of the host"
        if address.is_link_local:
            return f"{address} is a link-local address"
        if address.is_unspecified:
            return f"{address} reaches the host itself"
        if str(address) in local:
            return f"{address} is an address of the host"
    return None


def check(request: ApiRequest, facts: Facts) -> None:
    """Raise ``PolicyDenied`` for a remote on the host itself, or one whose host cannot be
    read or resolved (dockerd could not fetch it either; fail closed)."""
    for remote in remotes(request):
        try:
            host = remote_host(remote)
        except UnreadableRemote as exc:
            raise PolicyDenied("build-remote", build_remote_message(remote, str(exc))) from None
        if host is None:
            continue
        addresses = facts.addresses.get(host, ())
        refused = (
            f"{host} resolves to {found}"
            if (found := _why_refused(addresses, facts.local_addresses))
            else None
            if addresses
            else f"its host {host!r} does not resolve"
        )
        if refused:
            raise PolicyDenied("build-remote", build_remote_message(remote, refused))
