"""The socket-mount rows against a fake engine: tags are names, the policy decides by image id."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import docker.errors
import pytest

from eci.dockerapi.imageref import parse_reference
from eci.engine.layout import EngineLayout
from eci.errors import socket_mount_message
from eci.verify.checks import SOCKET, Outcome, Target, _retag_refused, _socket_mount

BUSYBOX, CLI, OTHER = "sha256:b", "sha256:c", "sha256:o"


def _key(name: str) -> str:
    ref = parse_reference(name)
    return f"{ref.repository}:{ref.tag}"


@dataclass
class FakeContainer:
    engine: FakeEngine
    source: str

    @property
    def attrs(self) -> dict[str, Any]:
        return {"HostConfig": {"Binds": [f"{self.source}:{SOCKET}:rw"]}}

    def start(self) -> None:
        if self.engine.start_fails:
            raise docker.errors.APIError("500", explanation="runtime create failed")

    def wait(self) -> dict[str, int]:
        return {"StatusCode": 0}

    def logs(self, stdout: bool, stderr: bool) -> bytes:
        return b"20.10.24\n"

    def remove(self, force: bool = False) -> None:
        self.engine.live -= 1


@dataclass
class FakeImage:
    engine: FakeEngine
    id: str

    def tag(self, repository: str, tag: str) -> None:
        self.engine.tags[_key(f"{repository}:{tag}")] = self.id


@dataclass
class FakeEngine:
    """``allowed``: image ids the socket is granted to; ``by_name``: decide by the name (a
    broken engine), ``real_socket``: grant the real socket instead of a filtered one."""

    grants_dir: Path
    allowed: set[str] = field(default_factory=set)
    by_name: set[str] = field(default_factory=set)
    real_socket: bool = False
    start_fails: bool = False
    tags: dict[str, str] = field(
        default_factory=lambda: {_key("busybox"): BUSYBOX, _key("docker:cli"): CLI}
    )
    created: list[str] = field(default_factory=list)
    live: int = 0

    # docker.DockerClient's surface used by the checks
    @property
    def containers(self) -> FakeEngine:
        return self

    @property
    def images(self) -> FakeEngine:
        return self

    @property
    def api(self) -> FakeEngine:
        return self

    def get(self, name: str) -> FakeImage:
        if _key(name) not in self.tags:
            raise docker.errors.ImageNotFound(name)
        return FakeImage(self, self.tags[_key(name)])

    def remove(self, name: str) -> None:
        del self.tags[_key(name)]

    def tag(self, image_id: str, repository: str, tag: str) -> None:
        self.tags[_key(f"{repository}:{tag}")] = image_id

    def create(self, image: str, command: list[str], volumes: object = None) -> FakeContainer:
        self.created.append(image)
        allowed = self.tags[_key(image)] in self.allowed or _key(image) in self.by_name
        if volumes and not allowed:
            message = socket_mount_message(parse_reference(image).repository)
            raise docker.errors.APIError("403", explanation=message)
        self.live += 1
        source = SOCKET if self.real_socket else f"{self.grants_dir}/{'0' * 32}/docker.sock"
        return FakeContainer(self, source)

    def run(self, image: str, command: list[str], volumes: object, remove: bool) -> bytes:
        self.create(image, command, volumes).remove()
        return b""


def _target(tmp_path: Path, images: list[str], eci: bool = True, **engine: Any) -> Target:
    layout = EngineLayout.for_state_dir(tmp_path)
    layout.config_dir.mkdir(parents=True)
    mount = {"imageList": {"images": images, "allowDerivedImages": True}}
    section = {"value": eci, "dockerSocketMount": mount}
    layout.settings_snapshot.write_text(json.dumps({"enhancedContainerIsolation": section}))
    fake = FakeEngine(layout.grants_dir, **engine)
    return Target(client=cast(Any, fake), layout=layout, eci_enabled=eci)


def _engine(t: Target) -> FakeEngine:
    return cast(FakeEngine, t.client)


def test_cli_not_allowlisted_is_refused_with_the_socket_text(tmp_path: Path) -> None:
    t = _target(tmp_path, ["docker.io/testcontainers/ryuk:*"])
    assert _socket_mount(t) == Outcome(True, "refused (not allowlisted)")


def test_allowlisted_cli_gets_a_filtered_socket_and_reaches_the_engine(tmp_path: Path) -> None:
    t = _target(tmp_path, ["docker:cli"], allowed={CLI})
    outcome = _socket_mount(t)
    assert outcome == Outcome(True, "allowlisted: filtered socket, docker version 20.10.24")
    assert _engine(t).live == 0


def test_the_real_socket_in_an_eci_container_fails(tmp_path: Path) -> None:
    t = _target(tmp_path, ["docker:cli"], allowed={CLI}, real_socket=True)
    outcome = _socket_mount(t)
    assert not outcome.passed
    assert SOCKET in outcome.observed
    assert _engine(t).live == 0


def test_a_container_that_fails_to_start_is_removed(tmp_path: Path) -> None:
    t = _target(tmp_path, ["docker:cli"], allowed={CLI}, start_fails=True)
    with pytest.raises(docker.errors.APIError):
        _socket_mount(t)
    assert _engine(t).live == 0


def test_a_run_with_an_empty_image_list_is_inconsistent(tmp_path: Path) -> None:
    assert not _socket_mount(_target(tmp_path, [], allowed={CLI})).passed


def test_without_eci_the_cli_runs_on_the_real_socket(tmp_path: Path) -> None:
    t = _target(tmp_path, [], eci=False, allowed={CLI}, real_socket=True)
    assert _socket_mount(t) == Outcome(True, "runs: docker version 20.10.24")


def test_without_eci_a_refusal_fails(tmp_path: Path) -> None:
    assert not _socket_mount(_target(tmp_path, [], eci=False)).passed


def test_retag_to_an_any_tag_entry_is_refused_and_the_tag_removed(tmp_path: Path) -> None:
    t = _target(tmp_path, ["docker.io/testcontainers/ryuk:*"])
    before = dict(_engine(t).tags)
    outcome = _retag_refused(t)
    assert outcome.passed, outcome.observed
    assert _engine(t).created == ["docker.io/testcontainers/ryuk:eci-verify-retag"]
    assert _engine(t).tags == before


def test_retag_over_an_existing_tag_restores_it(tmp_path: Path) -> None:
    t = _target(tmp_path, ["docker@sha256:" + "a" * 64, "docker:cli"], allowed={CLI})
    before = dict(_engine(t).tags)
    outcome = _retag_refused(t)
    assert outcome.passed, outcome.observed
    assert _engine(t).created == ["docker.io/library/docker:cli"]
    assert _engine(t).tags == before


def test_an_engine_deciding_by_name_fails_and_the_tag_is_still_restored(tmp_path: Path) -> None:
    t = _target(tmp_path, ["docker:cli"], allowed={CLI}, by_name={_key("docker:cli")})
    outcome = _retag_refused(t)
    assert outcome == Outcome(False, "ran")
    assert _engine(t).get("docker:cli").id == CLI


def test_digest_pins_cannot_be_impersonated_so_busybox_must_be_refused(tmp_path: Path) -> None:
    t = _target(tmp_path, ["docker@sha256:" + "a" * 64])
    outcome = _retag_refused(t)
    assert outcome.passed
    assert outcome.observed.startswith("no imageList entries to impersonate")
    assert _engine(t).created == ["busybox:latest"]


def test_wildcard_passes_with_a_warning_and_runs_nothing(tmp_path: Path) -> None:
    t = _target(tmp_path, ["*", "docker:cli"])
    outcome = _retag_refused(t)
    assert outcome.passed
    assert outcome.observed.startswith('WARNING: imageList has "*"')
    assert _engine(t).created == []


@pytest.mark.parametrize("images", [[], ["docker:cli"]])
def test_retag_row_is_not_applicable_without_eci(tmp_path: Path, images: list[str]) -> None:
    t = _target(tmp_path, images, eci=False)
    assert _retag_refused(t).passed
    assert _engine(t).created == []
