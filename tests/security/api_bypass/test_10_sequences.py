"""Bypass attempts, section 10 — sequences: a hijack that is not one, a symlink swapped
after the check.

How a case works: see conftest.py."""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import tempfile
from base64 import urlsafe_b64decode
from pathlib import Path
from typing import Any

import pytest
from tests.security.api_bypass.common import (
    CREATE,
    IMAGE,
    MARKER,
    PID_HOST,
    SHORT,
    Env,
    assert_refused,
    create_raw,
    inspect,
    json_post,
    remove_container,
    tar,
    unique,
)
from tests.security.rawhttp import Response, api, exchange, request

from eci.errors import (
    restricted_mount_message,
)

pytestmark = pytest.mark.engine


def test_detached_exec_start_does_not_open_a_raw_pipe(env: Env) -> None:
    """`POST /exec/{id}/start` is a hijacking route, but with `{"Detach": true}` dockerd
    answers a plain `200` and keeps the connection an HTTP one. A request pipelined after it
    must still be policed, not piped to dockerd raw."""
    holder = unique("sec-exec")
    name = unique()
    smuggled = json_post(CREATE.format(name=name))

    def attempt(socket_path: Path) -> list[Response]:
        made = api(env.user, "POST", f"/v1.41/containers/{holder}/exec", {"Cmd": ["true"]})
        assert made.status == 201, made
        start = request("POST", f"/v1.41/exec/{made.json()['Id']}/start", {"Detach": True})
        return exchange(socket_path, start + smuggled, 2, timeout=SHORT, partial=True)

    made = api(
        env.user,
        "POST",
        f"/containers/create?name={holder}",
        {"Image": IMAGE, "Cmd": ["sleep", "600"]},
    )
    assert made.status == 201, made
    try:
        assert api(env.user, "POST", f"/containers/{holder}/start").status == 204
        try:  # control: on dockerd's socket the second request is simply run
            responses = attempt(env.raw)
            assert [r.status for r in responses] == [200, 201], responses
            info = inspect(env, "containers", name)
            assert info is not None
            assert info["HostConfig"]["PidMode"] == "host"
        finally:
            remove_container(env, name)
        try:
            responses = attempt(env.user)
            assert len(responses) == 2, responses
            assert responses[0].status == 200, responses
            assert_refused(responses[1], 403, PID_HOST)
            assert inspect(env, "containers", name) is None
        finally:
            remove_container(env, name)
    finally:
        remove_container(env, holder)


def test_symlink_swapped_after_the_check_does_not_expose_a_restricted_path(env: Env) -> None:
    """The bind source is a user-owned symlink to a harmless directory when the container is
    created, and points at /etc/docker when it starts (dockerd resolves it only then)."""
    work = Path(tempfile.mkdtemp(prefix="sec-swap-", dir="/tmp"))
    work.chmod(0o755)
    (work / "safe").mkdir()
    link = work / "link"

    def attempt(socket_path: Path, runtime: str = "sysbox-runc") -> bytes:
        """What `ls /x` shows, or the refusal's text."""
        name = unique()
        link.unlink(missing_ok=True)
        link.symlink_to(work / "safe")
        host_config = {"Binds": [f"{link}:/x"], "Runtime": runtime}
        body = {"Image": IMAGE, "Cmd": ["ls", "/x"], "HostConfig": host_config}
        try:
            made = api(socket_path, "POST", f"/containers/create?name={name}", body)
            if made.status != 201:
                return made.body
            link.unlink()
            link.symlink_to("/etc/docker")
            started = api(socket_path, "POST", f"/containers/{name}/start")
            if started.status != 204:
                return started.body
            assert api(env.raw, "POST", f"/containers/{name}/wait").status == 200
            return api(env.raw, "GET", f"/containers/{name}/logs?stdout=1&stderr=1").body
        finally:
            remove_container(env, name)

    try:
        # control: plain runc on dockerd's own socket shows /etc/docker
        assert b"key.json" in attempt(env.raw, runtime="runc")
        assert b"key.json" not in attempt(env.user)  # the proxy re-checks at start
        # and past the proxy, the shim checks the tree it hands to runc
        refused = attempt(env.raw)
        assert b"key.json" not in refused
        assert restricted_mount_message(str(link)).encode() in refused
    finally:
        shutil.rmtree(work, ignore_errors=True)


ARCHIVE_READS: dict[str, tuple[str, str, Any]] = {
    "archive-get-from-runc-container-bind": (
        "GET",
        "/v1.41/containers/{binder}/archive?path=/x/key.json",
        None,
    ),
    "archive-head-from-runc-container-bind": (
        "HEAD",
        "/v1.41/containers/{binder}/archive?path=/x/key.json",
        None,
    ),
    "copy-v1.23-from-runc-container-bind": (
        "POST",
        "/v1.23/containers/{binder}/copy",
        {"Resource": "/x/key.json"},
    ),
}


@pytest.mark.parametrize("case", list(ARCHIVE_READS.values()), ids=list(ARCHIVE_READS))
def test_archive_read_through_a_runc_containers_restricted_bind_refused(
    env: Env, case: tuple[str, str, Any]
) -> None:
    """The runc container holding a bind of /etc/docker is the one `VolumesFrom` may not
    borrow from; copying out of it reads the same host files, as dockerd (root): here the
    0600 /etc/docker/key.json."""
    method, target, body = case
    data = request(method, target.format(binder=env.binder_name), body)
    responses = exchange(env.raw, data, methods=[method])
    assert [r.status for r in responses] == [200], responses
    if method == "HEAD":
        stat = json.loads(urlsafe_b64decode(responses[0].headers["x-docker-container-path-stat"]))
        assert stat["name"] == "key.json"
    else:
        with tarfile.open(fileobj=io.BytesIO(responses[0].body)) as archive:
            assert archive.getnames() == ["key.json"]
    responses = exchange(env.user, data, methods=[method])
    assert len(responses) == 1, responses
    assert responses[0].status == 403, responses
    if method != "HEAD":
        assert_refused(responses[0], 403, None)


def test_archive_write_through_a_runc_containers_restricted_bind_refused(env: Env) -> None:
    """A runc container with a writable bind of a restricted path (a directory of the
    engine's state dir): extracting a tar into it writes on the host, as root."""
    scratch = Path(env.state_dir) / unique("sec-scratch")
    scratch.mkdir()
    name = unique("sec-writer")
    try:
        create_raw(
            env,
            name,
            {"Image": IMAGE, "HostConfig": {"Runtime": "runc", "Binds": [f"{scratch}:/x"]}},
        )
        for socket_path, planted in ((env.raw, "by-dockerd"), (env.user, "by-proxy")):
            data = request(
                "PUT",
                f"/v1.41/containers/{name}/archive?path=/x",
                tar({planted: MARKER.encode()}),
                content_type="application/x-tar",
            )
            responses = exchange(socket_path, data)
            assert len(responses) == 1, responses
            if socket_path == env.raw:
                assert responses[0].status == 200, responses
            else:
                assert_refused(responses[0], 403, None)
        assert sorted(os.listdir(scratch)) == ["by-dockerd"]
    finally:
        remove_container(env, name)
        shutil.rmtree(scratch, ignore_errors=True)
