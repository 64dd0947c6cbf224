"""Bypass attempts against the policing proxy, sent as raw HTTP bytes over unix sockets.

Every case is first proven against dockerd's own socket (the control): the daemon accepts it
with the dangerous effect, seen in an inspect; where that cannot happen on this host, the
control at least shows the daemon processes the request (the case's comment says why). The
identical bytes then go to the proxy (the user socket), which must refuse them with the
exact status and text, and nothing may be created. Everything a case creates is removed by
exact name or id through the raw socket.

No client library is involved in an attack: ``tests/security/rawhttp.py`` writes the bytes
and reads the responses back itself.

The suite is split by section, one module each; ``common.py`` holds what they share and
this conftest the environment (set up once for the whole package).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.security.api_bypass.common import (
    IMAGE,
    Env,
    unique,
)
from tests.security.rawhttp import api
from tests.support import EngineHandle


@pytest.fixture(scope="package")
def env(engine: EngineHandle) -> Iterator[Env]:
    raw, user = engine.layout.raw_socket, engine.layout.user_socket
    holder_name, binder_name, volume = unique("sec-holder"), unique("sec-binder"), unique("sec-vol")
    links = Path(tempfile.mkdtemp(prefix="sec-links-", dir="/tmp"))
    created: list[str] = []
    try:
        links.chmod(0o755)
        (links / "link").symlink_to("/etc/docker")
        (links / "etc").symlink_to("/etc")
        (links / "safe").mkdir()
        holder = api(
            raw,
            "POST",
            f"/containers/create?name={holder_name}",
            {
                "Image": IMAGE,
                "Cmd": ["sleep", "3600"],
                "HostConfig": {"Runtime": "runc", "IpcMode": "shareable"},
            },
        )
        assert holder.status == 201, holder
        created.append(holder_name)
        started = api(raw, "POST", f"/containers/{holder_name}/start")
        assert started.status == 204, started
        binder = api(
            raw,
            "POST",
            f"/containers/create?name={binder_name}",
            {"Image": IMAGE, "HostConfig": {"Runtime": "runc", "Binds": ["/etc/docker:/x:ro"]}},
        )
        assert binder.status == 201, binder
        created.append(binder_name)
        made = api(
            raw,
            "POST",
            "/volumes/create",
            {
                "Name": volume,
                "Driver": "local",
                "DriverOpts": {"type": "none", "o": "bind", "device": "/etc/docker"},
            },
        )
        assert made.status == 201, made
        host_network = api(raw, "GET", "/networks/host").json()["Id"]
        pid = int(engine.layout.pid_file("dockerd").read_text().strip())
        yield Env(
            engine=engine,
            raw=raw,
            user=user,
            holder=str(holder.json()["Id"]),
            holder_name=holder_name,
            binder=str(binder.json()["Id"]),
            binder_name=binder_name,
            volume=volume,
            links=links,
            host_network=str(host_network),
            dockerd_cwd=os.readlink(f"/proc/{pid}/cwd"),
        )
    finally:
        for name in created:
            api(raw, "DELETE", f"/containers/{name}?force=1&v=1")
        api(raw, "DELETE", f"/volumes/{volume}?force=1")
        shutil.rmtree(links, ignore_errors=True)
