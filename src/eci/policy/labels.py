"""Labels eci sets on the containers it forwards (the socket grant, the requester)."""

from __future__ import annotations

from eci.dockerapi.gojson import GoObject


def set_label(body: GoObject, name: str, value: str) -> None:
    """Set a label of a create body, in place (whatever spelling its `Labels` key has)."""
    labels = body.obj("Labels")
    if labels is None:
        labels = GoObject()
        body.set_field("Labels", labels)
    labels[name] = value
