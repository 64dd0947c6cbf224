"""Who asked for a container, told to the runtime: the value of the requester label.

The runtime maps the requester's own files in host bind mounts to container root (and what
container root writes there lands as the requester), leaving everyone else's as nobody. It
learns the requester from this label, which the proxy sets on every create it forwards for a
non-root user (from SO_PEERCRED; a client cannot choose it: a create naming it is refused).
The runtime trusts it only when the image does not carry the same value (an image can be
built with any label) and never maps root or ids of eci's own pool.

Shared by the policy (which sets it) and the runtime shim (which reads it): stdlib-free. The
label's name is ``eci.contract.labels.REQUESTER_LABEL``.
"""

from __future__ import annotations


def requester_value(uid: int, gid: int) -> str:
    return f"{uid}:{gid}"


def parse_requester(value: str) -> tuple[int, int] | None:
    """(uid, gid) of a requester label; None for anything else, or for root."""
    uid, sep, gid = value.partition(":")
    if not (sep and uid.isdigit() and gid.isdigit() and uid.isascii() and gid.isascii()):
        return None
    ids = int(uid), int(gid)
    return ids if 0 not in ids and max(ids) < 2**32 - 1 else None
