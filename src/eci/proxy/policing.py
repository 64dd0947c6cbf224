"""What the policy says about one client's requests, apart from relaying them.

Who asks (the client's user, or through a container's granted socket the user who created
that container), the facts the decision needs looked up in dockerd first (``FactsQuery``),
the image identity a socket grant is tied to, the command list of a granted socket, the
decision with the target pinned to full ids, and the grant a decision carries, begun before
the create is forwarded and settled after it."""

from __future__ import annotations

import dataclasses
import functools

from eci.dockerapi.request import ApiRequest
from eci.dockerapi.target import ApiTarget
from eci.errors import ECI_PREFIX, PolicyDenied
from eci.policy import (
    Decision,
    Deny,
    Facts,
    FactsQuery,
    Rewrite,
    decide,
    facts_needed,
    pin_target,
)
from eci.policy.commands import check_command
from eci.policy.grants import Grant
from eci.proxy.config import ProxyConfig
from eci.proxy.grants import new_token
from eci.proxy.identity import image_identity
from eci.proxy.peer import Peer, requester_of
from eci.proxy.upstream import LookupFailed, gather_facts


class Policing:
    """The policy's side of one client connection (``grant``: the token of the container
    socket it came in on, where the admin's command list applies)."""

    def __init__(self, config: ProxyConfig, peer: Peer, grant: str | None) -> None:
        self.config = config
        self.peer = peer
        self.grant = grant

    @functools.cached_property
    def _peer_requester(self) -> tuple[int, int] | None:
        """The client's (uid, primary gid), looked up in the passwd database once, when a
        decision first needs it (a `_ping` or a connection over the cap needs none)."""
        return requester_of(self.peer)

    def requester(self) -> tuple[int, int] | None:
        """Who the request is made for: through a container's granted socket, the user who
        created that container (its own ids are a range's, handed to the next tenant once
        it is gone); else the client's user."""
        if self.grant is None:
            return self._peer_requester
        grants = self.config.grants
        return grants.requester(self.grant) if grants is not None else None

    async def decide(self, request: ApiRequest, sent_target: str) -> tuple[Decision, ApiTarget]:
        """The decision, and the target to forward (its container named by full id)."""
        policy = self.config.policy
        if self.grant is not None:
            try:
                check_command(request, sent_target, policy.command_list)
            except PolicyDenied as denied:
                return Deny(denied.rule, str(denied), denied.status), request.target
        query = facts_needed(request, policy)
        try:
            facts = await gather_facts(self.config.upstream, query) if query else Facts()
            facts = await self._image_facts(query, facts)
        except (LookupFailed, OSError) as exc:
            deny = Deny("lookup-failed", f"{ECI_PREFIX}cannot check the request: {exc}", 503)
            return deny, request.target
        facts = dataclasses.replace(facts, requester=self.requester())
        return decide(request, policy, facts), pin_target(request, facts)

    async def _image_facts(self, query: FactsQuery, facts: Facts) -> Facts:
        """For a create that binds a Docker socket: the image's identity, for the grant."""
        policy = self.config.policy
        if (
            query.image is None
            or self.config.grants is None
            or not policy.host_paths.binds_socket(query.paths, facts.real_paths)
        ):
            return facts
        image, resolved, bases = await image_identity(
            self.config.upstream, query.image, policy.image_list, self.config.digests
        )
        return dataclasses.replace(
            facts, image=image, resolved=resolved, bases=bases, grant_token=new_token()
        )

    async def begin_grant(self, decision: Decision) -> Grant | None:
        """Open the socket grant ``decision`` carries, if any, before its create is forwarded
        (``OSError``: the container's socket cannot be made; nothing is forwarded then)."""
        grant = decision.grant if isinstance(decision, Rewrite) else None
        if grant is None or self.config.grants is None:
            return None
        await self.config.grants.begin(grant.token, self.requester())
        return grant

    async def settle_grant(self, grant: Grant) -> None:
        """After the create: keep the grant if dockerd made the container (and audit it)."""
        assert self.config.grants is not None  # (begin_grant returned it)
        container = await self.config.grants.settle(grant.token)
        if container is not None:
            self.config.audit.granted(self.peer, grant, container)
