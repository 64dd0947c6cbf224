"""What one user may make the proxy hold: body sizes, buffered bytes, time, connections.

A policed body must be read whole before the policy decides (CVE-2024-41110), so the proxy
holds it in memory: without bounds, a docker-group user sending many large bodies and never
their last byte grew the proxy by ~800 MB, kept after the connections closed. These limits
bound that. Bodies of streamed routes (build contexts, image tarballs, archives) are relayed
with backpressure and never held, so no size limit or timeout applies to them, nor to a
response being relayed (`logs -f`, `events`, `wait`) or a hijacked stream (attach, exec).
"""

from __future__ import annotations

from dataclasses import dataclass

from eci.dockerapi.routes import Route

__all__ = ["CLIENT_BUFFER", "CLIENT_READ", "POLICED_BODY_LIMIT", "Limits"]

KiB = 1024
MiB = 1024 * KiB

#: A policed JSON body: a container create from the Docker CLI is 2-5 KiB, a large one (a
#: long --env-file, compose labels) some tens of KiB; swarm configs and secrets (the largest
#: bodies dockerd takes here) are at most 1000 KiB, 1.33 MiB once base64 in JSON.
POLICED_BODY_LIMIT = 2 * MiB
#: A body on a request dockerd reads no body of (GET, HEAD, DELETE, `wait`) or a few bytes
#: (exec start's ``{"Detach": false, "Tty": false}``), and on any request whose answer may
#: last (hijacked streams, `wait`): the body stays in memory while the answer does.
SMALL_BODY_LIMIT = 64 * KiB
SMALL_BODY_ROUTES = frozenset({"container.wait"})
#: Bodies held at once across all connections (each one reserves its Content-Length, or its
#: route's limit when chunked, before a byte of it is read, until its request is answered),
#: and by one uid: four users are needed to take the whole budget.
BODY_BUDGET = 32 * MiB
BODY_BUDGET_PER_UID = 8 * MiB
#: A request head must be complete this long after its first byte arrives (slowloris) ...
HEADER_TIMEOUT = 10.0
#: ... and a policed body this long after its head (waiting for the budget included).
BODY_TIMEOUT = 20.0
#: A connection between requests (or a new one) with nothing sent is closed after this long.
#: The Docker CLI and docker-py reopen a closed idle connection by themselves.
IDLE_TIMEOUT = 60.0
#: Connections one uid may have open at once; root's are not counted. `docker compose up`
#: holds one per container it attaches to, plus a few.
CONNECTIONS_PER_UID = 128
UNLIMITED_UIDS = frozenset({0})
#: The most one socket read from a client takes, and what its reader buffers before it stops
#: reading (the ``limit`` of the client sockets' servers): what a client costs before any of
#: its requests is looked at. Every readable socket is read once per turn of the event loop,
#: so a burst of connections costs this for each; with asyncio's defaults (256 KiB reads,
#: 128 KiB) it was what the kernel queues for a unix socket, ~200 KiB per connection.
CLIENT_READ = 64 * KiB
CLIENT_BUFFER = 16 * KiB


@dataclass(frozen=True, slots=True)
class Limits:
    """The proxy's limits (the constants above; tests shrink them)."""

    policed_body: int = POLICED_BODY_LIMIT
    small_body: int = SMALL_BODY_LIMIT
    budget: int = BODY_BUDGET
    budget_per_uid: int = BODY_BUDGET_PER_UID
    header_timeout: float = HEADER_TIMEOUT
    body_timeout: float = BODY_TIMEOUT
    idle_timeout: float = IDLE_TIMEOUT
    connections_per_uid: int = CONNECTIONS_PER_UID
    unlimited_uids: frozenset[int] = UNLIMITED_UIDS

    def body_limit(self, method: str, route: Route | None) -> int:
        """The largest body read for a request: the policed limit for anything dockerd may
        read a body of (unknown routes included, they are refused after reading)."""
        if method.upper() in ("GET", "HEAD", "DELETE"):
            return self.small_body
        if route is not None and (route.hijack or route.name in SMALL_BODY_ROUTES):
            return self.small_body
        return self.policed_body

    def counts_connections_of(self, uid: int) -> bool:
        return uid not in self.unlimited_uids
