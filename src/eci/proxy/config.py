"""What every client connection of one proxy shares: where dockerd is, the policy, the audit
log, the limits, and the state built from them (upstream pool, digest cache, body budget,
connection counts)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from eci.policy import PolicyContext
from eci.proxy.admission import BodyBudget, ConnectionCounts
from eci.proxy.audit import AuditLog
from eci.proxy.grants import GrantedSockets
from eci.proxy.identity import DigestCache
from eci.proxy.limits import Limits
from eci.proxy.memory import MemoryReturn
from eci.proxy.upstream import UpstreamPool


@dataclass
class ProxyConfig:
    upstream: Path
    policy: PolicyContext
    audit: AuditLog
    limits: Limits = field(default_factory=Limits)
    #: the containers' filtered sockets (None: no socket can be granted)
    grants: GrantedSockets | None = None
    pool: UpstreamPool = field(init=False)
    digests: DigestCache = field(init=False, default_factory=DigestCache)
    memory: MemoryReturn = field(init=False, default_factory=MemoryReturn)
    budget: BodyBudget = field(init=False)
    connections: ConnectionCounts = field(init=False)

    def __post_init__(self) -> None:
        self.pool = UpstreamPool(self.upstream)
        self.budget = BodyBudget(
            self.limits.budget, self.limits.budget_per_uid, self.memory.freed_bytes
        )
        self.connections = ConnectionCounts(self.limits)
