"""policy room: pure decisions over parsed Docker API requests (no IO, no asyncio).

``decide(request, context, facts) -> Allow | Deny | Rewrite | ExtractInContainer``;
``facts_needed`` says what the proxy must look up in the engine first (containers, volumes,
networks, resolved host paths); ``pin_target`` names the container looked up by its full id
in what is forwarded.
"""

from eci.policy.context import HostPaths, PolicyContext
from eci.policy.decide import decide, facts_needed
from eci.policy.decision import Allow, Decision, Deny, ExtractInContainer, Rewrite
from eci.policy.facts import ContainerFacts, Facts, FactsQuery, MountFact
from eci.policy.pinning import pin_target

__all__ = [
    "Allow",
    "ContainerFacts",
    "Decision",
    "Deny",
    "ExtractInContainer",
    "Facts",
    "FactsQuery",
    "HostPaths",
    "MountFact",
    "PolicyContext",
    "Rewrite",
    "decide",
    "facts_needed",
    "pin_target",
]
