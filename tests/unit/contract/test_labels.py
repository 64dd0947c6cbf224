"""The labels: what the policy writes on a create is what the runtime shim reads back."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from tests.unit.policy.cases import FACTS, ON, create, forwarded

from eci.contract.labels import GRANT_LABEL, REQUESTER_LABEL
from eci.policy import Deny, decide
from eci.runtime.shim import lifecycle
from eci.runtime.shim.ranges import Pool

IMAGE_ID = "f" * 64
POOL = Pool(100000, 65536 * 4)


def _as_dockerd_records(
    data_root: Path, sent: dict[str, Any], image_labels: dict[str, str]
) -> None:
    """What dockerd writes for the forwarded create: the container's record and its image's."""
    record = {"Config": {"Labels": sent.get("Labels") or {}}, "Image": f"sha256:{IMAGE_ID}"}
    container = data_root / "containers" / "cid"
    container.mkdir(parents=True)
    (container / "config.v2.json").write_text(json.dumps(record))
    images = data_root / "image" / "overlay2" / "imagedb" / "content" / "sha256"
    images.mkdir(parents=True)
    (images / IMAGE_ID).write_text(json.dumps({"config": {"Labels": image_labels}}))


def test_the_runtime_reads_the_requester_the_policy_wrote(tmp_path: Path) -> None:
    alice = dataclasses.replace(FACTS, requester=(1000, 1001))
    body = {"Image": "busybox", "Labels": {"app": "x"}}
    sent = forwarded(create(body), decide(create(body), ON, alice))
    _as_dockerd_records(tmp_path, sent, {"app": "x"})
    assert lifecycle._requester(str(tmp_path), "cid", POOL) == (1000, 1001)


def test_the_runtime_ignores_a_requester_the_image_carries(tmp_path: Path) -> None:
    alice = dataclasses.replace(FACTS, requester=(1000, 1001))
    body = {"Image": "busybox"}
    sent = forwarded(create(body), decide(create(body), ON, alice))
    _as_dockerd_records(tmp_path, sent, {REQUESTER_LABEL: sent["Labels"][REQUESTER_LABEL]})
    assert lifecycle._requester(str(tmp_path), "cid", POOL) is None


def test_a_client_may_set_neither_label() -> None:
    for label in (REQUESTER_LABEL, GRANT_LABEL):
        decision = decide(create({"Image": "busybox", "Labels": {label: "1:1"}}), ON, FACTS)
        assert isinstance(decision, Deny), label
        assert label in decision.message
